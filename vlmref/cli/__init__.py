"""The ``vlmref`` command line (``vlmref --help``); importing it does not import torch."""
