"""The ``--template_profile`` flag of the commands that encode with a template (``render``, ``check-data``)::

    vlmref render --model_type yi-vl-6b-chat --template_profile swift-2.2.0

A shared field of their argument dataclasses (``vlmref.arguments``)::

    @dataclass
    class RenderArguments:
        ...
        template_profile: TemplateProfile = template_profile_arg()
"""

from __future__ import annotations

from typing import Any, Literal

from ..arguments import arg
from ..templates.meta import DEFAULT_PROFILE

# the choices of --template_profile: vlmref.templates.meta.PROFILES (tests/test_cli_args_files.py checks they agree)
TemplateProfile = Literal["official", "swift-2.2.0"]
TEMPLATE_PROFILE_HELP = ("official: vlmref's corrected templates; swift-2.2.0: ms-swift 2.2.0's exact input_ids and "
                         "labels, quirks included")


def template_profile_arg() -> Any:
    """The ``template_profile: TemplateProfile`` field (default ``official``)."""
    return arg(DEFAULT_PROFILE, TEMPLATE_PROFILE_HELP)
