from floodlabel.cli import entry

raise SystemExit(entry())
