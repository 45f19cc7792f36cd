"""One module per `imet-kit` subcommand (NAME, HELP, add_arguments, run); see cli.py."""
