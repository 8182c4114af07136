"""`python src/replab <command> …`: the command line of the repository this file lives in.

Every dvc.yaml stage calls replab this way, so a stage always runs the code of the copy it runs in: `dvc exp
run --queue` and `--temp` run in a copy under `.dvc/tmp/exps/`, where an installed (editable) replab would import
the workspace's `src/` instead, and the experiment's commit and dvc.lock would describe other code than ran.
`python -m replab` and the `replab` console script check the same thing in `replab.cli.main`.
"""

import sys
from pathlib import Path

if not __package__:  # run as a directory (`python src/replab`), not as `python -m replab`
    # sys.path[0] is src/replab itself, whose modules (io, data, report, ...) would shadow top-level names;
    # src/ instead, ahead of site-packages and any editable-install path.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from replab.cli import main  # noqa: E402

sys.exit(main())
