"""GPU-memory prediction: scenarios as data, a FakeTensorMode trace of vlmref's full-size models, the documented table.

The pure part (``scenario``, ``documented``, ``report``) imports without torch; ``simulate`` needs torch.
"""

from .documented import DOCUMENTED, DocumentedFootprint, documented_for
from .scenario import MemoryScenario, ScenarioError

__all__ = ["DOCUMENTED", "DocumentedFootprint", "MemoryScenario", "ScenarioError", "documented_for"]
