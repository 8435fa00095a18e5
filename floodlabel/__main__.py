from floodlabel.cli import main

raise SystemExit(main())
