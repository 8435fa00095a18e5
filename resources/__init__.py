"""Package data of floodlabel: the app icon and the bundled sample dataset (resources/ in the repository)."""
