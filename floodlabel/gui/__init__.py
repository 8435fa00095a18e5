"""Qt widgets and workers. Calls floodlabel.core; holds no model math."""
