"""The ``--template_profile`` flag of the commands that encode with a template (``render``, ``check-data``)::

    vlmref render --model_type yi-vl-6b-chat --template_profile swift-2.2.0
"""

from __future__ import annotations

import argparse

from ..templates.meta import DEFAULT_PROFILE, PROFILES


def add_template_profile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template_profile", default=DEFAULT_PROFILE, choices=PROFILES,
                        help="official (default): vlmref's corrected templates; swift-2.2.0: ms-swift 2.2.0's exact "
                             "input_ids and labels, quirks included")
