"""`python -m juniper_ops` runs the operator CLI."""

import sys

from juniper_ops.cli import main

sys.exit(main())
