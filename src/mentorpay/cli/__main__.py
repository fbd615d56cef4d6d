"""``python -m mentorpay.cli``: the same as the ``mentorpay`` command."""

import sys

from mentorpay.cli import main

sys.exit(main())
