"""What `riskpipe run --task credit` needs to know about a bank's table (the `credit:` section).

Column names are the bank's, as in the table's header; riskpipe uses them as
feature names after `table.column_name` (lower case, `_` for anything else),
and accepts either spelling here.
"""
import dataclasses
from typing import Tuple


@dataclasses.dataclass
class ScorecardScale:
    """points = offset + factor * ln(good:bad odds), fixed by three numbers.

    The defaults put 600 points at odds of 50 goods to 1 bad, and every 20
    points more double the odds: factor = 20 / ln 2 = 28.85, offset = 600 -
    factor * ln 50 = 487.1; a 2% probability of default scores about 599.
    """
    base_points: float = 600.0
    base_odds: float = 50.0
    points_to_double_odds: float = 20.0


@dataclasses.dataclass
class CreditBlessing:
    """The Evaluator blesses a credit model when, on the eval split, KS and
    ROC-AUC clear these lower bounds and neither falls more than `max_drop`
    below the last blessed model's."""
    min_ks: float = 0.2
    min_roc_auc: float = 0.65
    max_drop: float = 0.03


@dataclasses.dataclass
class CreditConfig:
    # The binary label column and the value that marks a default (a bad).
    label: str = ""
    positive: str = ""
    # Optional: an id column (hash split key, echoed in decisions) and an
    # application date column (YYYY-MM-DD or an ISO date-time: out-of-time split).
    id: str = ""
    date: str = ""
    # Columns that are not model features.
    drop: Tuple[str, ...] = ()
    # Type overrides of the inferred column types.
    categorical: Tuple[str, ...] = ()
    numeric: Tuple[str, ...] = ()
    # Out-of-time split: applications dated on or after eval_start_date are the
    # eval split; when empty, the latest eval_fraction of them are.
    eval_start_date: str = ""
    # Without a date column: a deterministic hash split of the id (or of the
    # whole row), this share to eval.
    eval_fraction: float = 0.2
    # The number of reason codes per application.
    reason_codes: int = 4
    scale: ScorecardScale = dataclasses.field(default_factory=ScorecardScale)
    blessing: CreditBlessing = dataclasses.field(default_factory=CreditBlessing)
