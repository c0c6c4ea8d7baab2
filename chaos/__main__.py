"""`python -m chaos` (`make chaos`): the bounded fault suite; see chaos/suite.py and docs/reliability.md."""

import sys

from chaos.suite import main

sys.exit(main())
