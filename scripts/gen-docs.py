#!/usr/bin/env python3
"""Writes contrib/ktop.1 and contrib/completion/ktop.bash from ktop's argparse definitions
(ktop/cli/docs.py). Run after changing an option; tests/test_docs.py fails until you do."""

from pathlib import Path

from ktop.cli.docs import bash_completion, manpage

ROOT = Path(__file__).resolve().parent.parent
(ROOT / "contrib" / "ktop.1").write_text(manpage())
(ROOT / "contrib" / "completion").mkdir(parents=True, exist_ok=True)
(ROOT / "contrib" / "completion" / "ktop.bash").write_text(bash_completion())
print("wrote contrib/ktop.1 and contrib/completion/ktop.bash")
