import sys

from imet_kit.cli.main import main

sys.exit(main())
