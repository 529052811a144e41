"""The credit decision policy: hard rules, then score points -> APPROVE / REVIEW / DECLINE.

A policy is a YAML file (see engine/credit_policy_default.yaml):

    thresholds:
      decline_below: 540   # score points < 540 -> DECLINE
      review_below: 580    # score points < 580 -> at least REVIEW
    on_model_error: REVIEW # the score's part of the decision when no score could be had
    rules:
      - name: minimum_age
        type: below            # the column's number < limit
        column: age
        limit: 18
        action: DECLINE
      - name: high_debt_to_income
        type: above            # the column's number > limit
        column: debt_to_income
        limit: 0.6
        action: REVIEW
      - name: unemployed
        type: in               # the column's text is one of `values`
        column: employment_type
        values: [unemployed]
        action: REVIEW

Points are the scorecard's (components/credit/scorecard.py): higher is safer.
Boundaries are exact, as in the fraud policy (engine/policy.py): `below` fires
only when strictly below its limit, `above` only when strictly above, and a
score exactly at a threshold is not below it (540 points REVIEW, 580 APPROVE).

Rules read the application's own columns, every column of its file (model
inputs or not), named by header or by feature name (components.credit.table
.column_name); an `in` rule compares text case-insensitively. A rule whose
column the application lacks, or has missing (a MISSING_TOKENS cell), does not
fire: a policy that must see a column should make it a model input, where a
missing column stops the run. The decision is the most severe of the fired
rules' actions and the score's, in the order APPROVE < REVIEW < DECLINE.
"""
import dataclasses
import math
import os
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Tuple

from components.credit.table import column_name
from engine.policy import (APPROVE, REVIEW, PolicyError, PolicyFields, read_policy_yaml,
                           severest)

DECLINE = "DECLINE"
ACTIONS = (APPROVE, REVIEW, DECLINE)  # in increasing severity
DEFAULT_POLICY_FILE = "credit_policy_default.yaml"

# One application as the rules see it: column name -> stripped cell text, None when missing.
Cells = Mapping[str, Optional[str]]


@dataclasses.dataclass(frozen=True)
class CreditDecision:
    action: str
    score_points: Optional[float]
    default_probability: Optional[float]
    model_version: Optional[int]
    rules_fired: Tuple[str, ...] = ()
    # One human-readable line per reason: each fired rule, then the score.
    explanation: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class CreditRule:
    """A named hard rule over one column: `check(cells)` returns why it fired, or None."""

    name: str
    action: str
    column: str
    # Whether the rule reads its column as a number (the reader checks those cells).
    numeric: bool
    check: Callable[[Cells], Optional[str]]


@dataclasses.dataclass(frozen=True)
class PointsThresholds:
    decline_below: float
    review_below: float

    def action_for(self, points: float) -> str:
        if points < self.decline_below:
            return DECLINE
        if points < self.review_below:
            return REVIEW
        return APPROVE


def parse_number(text: str) -> Optional[float]:
    """A finite number of a cell's text, or None ("1_000", "inf" and "nan" are no numbers here)."""
    if "_" in text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class CreditPolicy:
    thresholds: PointsThresholds
    rules: Tuple[CreditRule, ...] = ()
    on_model_error: str = REVIEW

    @property
    def numeric_columns(self) -> FrozenSet[str]:
        """The columns some rule reads as numbers."""
        return frozenset(rule.column for rule in self.rules if rule.numeric)

    def fired_rules(self, cells: Cells) -> List[Tuple[CreditRule, str]]:
        """The rules that fire on one application, in policy order, each with its reason."""
        fired = []
        for rule in self.rules:
            why = rule.check(cells)
            if why is not None:
                fired.append((rule, why))
        return fired

    def decide(self, cells: Cells, score_points: Optional[float],
               default_probability: Optional[float], model_version: Optional[int],
               model_error: str = "") -> CreditDecision:
        """The decision for one application: rules first, then its score points.

        With no score (`score_points` None or NaN, `model_error` saying why) the
        score's part of the decision is `on_model_error`.
        """
        fired = self.fired_rules(cells)
        actions = [rule.action for rule, _ in fired]
        explanation = [f"rule {rule.name}: {why} -> {rule.action}" for rule, why in fired]
        if score_points is None or not math.isfinite(score_points):
            actions.append(self.on_model_error)
            why = model_error or ("not scored" if score_points is None
                                  else "the model returned no finite score")
            explanation.append(f"no model score ({why}) -> {self.on_model_error}")
            score_points = default_probability = None
        else:
            by_score = self.thresholds.action_for(score_points)
            actions.append(by_score)
            explanation.append(f"score {score_points:.4f} points from model version "
                               f"{model_version} -> {by_score}")
        return CreditDecision(action=severest(actions, ACTIONS), score_points=score_points,
                              default_probability=default_probability,
                              model_version=model_version,
                              rules_fired=tuple(rule.name for rule, _ in fired),
                              explanation=tuple(explanation))


# --- rule types -----------------------------------------------------------------------


def _number_of(cells: Cells, column: str, rule: str) -> Optional[float]:
    """The column's number, None when absent or missing; text that is no number is an error."""
    text = cells.get(column)
    if text is None:
        return None
    value = parse_number(text)
    if value is None:
        raise ValueError(f"column '{column}': '{text}' is not a number (rule {rule})")
    return value


def _below_rule(spec: PolicyFields, name: str, column: str) -> Callable[[Cells], Optional[str]]:
    limit = spec.number("limit")

    def check(cells: Cells) -> Optional[str]:
        value = _number_of(cells, column, name)
        if value is not None and value < limit:
            return f"{column} {value:g} below {limit:g}"
        return None

    return check


def _above_rule(spec: PolicyFields, name: str, column: str) -> Callable[[Cells], Optional[str]]:
    limit = spec.number("limit")

    def check(cells: Cells) -> Optional[str]:
        value = _number_of(cells, column, name)
        if value is not None and value > limit:
            return f"{column} {value:g} above {limit:g}"
        return None

    return check


def _in_rule(spec: PolicyFields, name: str, column: str) -> Callable[[Cells], Optional[str]]:
    values = frozenset(v.strip().casefold() for v in spec.string_list("values"))

    def check(cells: Cells) -> Optional[str]:
        text = cells.get(column)
        if text is not None and text.casefold() in values:
            return f"{column} is '{text}'"
        return None

    return check


# Rule type -> (builder, the fields it reads besides name/type/column/action, numeric).
RULE_TYPES: Dict[str, Tuple[Callable, Tuple[str, ...], bool]] = {
    "below": (_below_rule, ("limit",), True),
    "above": (_above_rule, ("limit",), True),
    "in": (_in_rule, ("values",), False),
}


# --- loading and validation -----------------------------------------------------------


def _default_rule_name(rule_type: str, column: str, data: Mapping) -> str:
    if rule_type == "in":
        return f"{column}_in"
    return f"{column}_{rule_type}_{data.get('limit')}"


def _parse_rule(data, where: str, seen: set) -> CreditRule:
    if not isinstance(data, Mapping):
        raise PolicyError(f"{where}: expected a mapping, got {type(data).__name__}")
    rule_type = data.get("type")
    if rule_type not in RULE_TYPES:
        raise PolicyError(f"{where}.type: {rule_type!r} is not one of "
                          f"{', '.join(sorted(RULE_TYPES))}")
    builder, own_fields, numeric = RULE_TYPES[rule_type]
    spec = PolicyFields(data, where, ("name", "type", "column", "action") + own_fields)
    column = column_name(spec.string("column"), 0)
    name = spec.string("name", default=_default_rule_name(rule_type, column, data))
    if name in seen:
        raise PolicyError(f"{where}.name: duplicate rule name '{name}'")
    seen.add(name)
    action = spec.string("action", choices=(REVIEW, DECLINE))
    return CreditRule(name=name, action=action, column=column, numeric=numeric,
                      check=builder(spec, name, column))


def parse_credit_policy(data, where: str = "policy") -> CreditPolicy:
    """A CreditPolicy from the parsed YAML of a policy file; `where` prefixes error messages."""
    top = PolicyFields(data, where, ("thresholds", "rules", "on_model_error"))
    levels = PolicyFields(top.get("thresholds"), f"{where}.thresholds",
                     ("decline_below", "review_below"))
    decline_below = levels.number("decline_below")
    review_below = levels.number("review_below")
    if decline_below > review_below:
        raise PolicyError(f"{where}.thresholds.decline_below: {decline_below:g} is above "
                          f"review_below ({review_below:g})")
    rules_data = top.get("rules", required=False) or []
    if not isinstance(rules_data, list):
        raise PolicyError(f"{where}.rules: expected a list, got {type(rules_data).__name__}")
    seen: set = set()
    rules = tuple(_parse_rule(item, f"{where}.rules[{i}]", seen)
                  for i, item in enumerate(rules_data))
    on_error = top.string("on_model_error", choices=ACTIONS, default=REVIEW)
    return CreditPolicy(thresholds=PointsThresholds(decline_below, review_below), rules=rules,
                        on_model_error=on_error)


def load_credit_policy(path: str) -> CreditPolicy:
    """Reads and validates a YAML credit policy file; PolicyError names the file and field."""
    return parse_credit_policy(read_policy_yaml(path), where=path)


def default_credit_policy_path() -> str:
    """The credit policy shipped with riskpipe (engine/credit_policy_default.yaml)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), DEFAULT_POLICY_FILE)
