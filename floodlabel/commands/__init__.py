"""CLI subcommands. Each module exposes `register(subparsers)`; the parser's `func(args) -> int` runs it."""
