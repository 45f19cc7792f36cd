from imet_kit.cli.main import entry

entry()
