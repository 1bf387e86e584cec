#!/usr/bin/env python3
"""Writes contrib/ktop.1 and contrib/completion/ (ktop.bash, zsh's _ktop, ktop.fish) from ktop's argparse definitions
(ktop/cli/docs.py), and ktop/schemas/tick.schema.json from the Snapshot dataclasses (ktop/schema.py).
Run after changing an option or a sample; tests/test_docs.py fails until you do."""

import json
from pathlib import Path

from ktop.cli.docs import bash_completion, fish_completion, manpage, zsh_completion
from ktop.schema import tick_schema

ROOT = Path(__file__).resolve().parent.parent
(ROOT / "contrib" / "ktop.1").write_text(manpage())
(ROOT / "contrib" / "completion").mkdir(parents=True, exist_ok=True)
(ROOT / "contrib" / "completion" / "ktop.bash").write_text(bash_completion())
(ROOT / "contrib" / "completion" / "_ktop").write_text(zsh_completion())
(ROOT / "contrib" / "completion" / "ktop.fish").write_text(fish_completion())
(ROOT / "ktop" / "schemas" / "tick.schema.json").write_text(json.dumps(tick_schema(), indent=1) + "\n")
print("wrote contrib/ktop.1, contrib/completion/{ktop.bash,_ktop,ktop.fish} and ktop/schemas/tick.schema.json")
