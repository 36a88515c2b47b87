"""``ct.leptons``: electrons that run a shell command (see docs/leptons.md).

``ct.leptons.bash("wc -l < {path}")`` is a bash :class:`Lepton`; so is a function that
returns the command under ``@ct.leptons.bash`` or ``@ct.leptons.bash(named_outputs=[...])``.
"""

from __future__ import annotations

from covalent._workflow.lepton import Lepton, LeptonError, bash

__all__ = ["Lepton", "LeptonError", "bash"]
