"""The decision policy: hard rules, then score thresholds -> APPROVE / REVIEW / BLOCK.

A policy is a YAML file (see engine/policy_default.yaml):

    thresholds:
      review: 0.1          # calibrated fraud probability >= review -> at least REVIEW
      block: 0.5           # calibrated fraud probability >= block  -> BLOCK
    on_model_error: REVIEW # the decision when no score could be had
    rules:
      - name: blocked_category
        type: merchant_category
        categories: [luxury]
        action: BLOCK
      - name: new_card_large_amount
        type: new_card_amount
        amount_above: 1000
        card_age_under_days: 7
        action: REVIEW
      - name: impossible_travel
        type: travel_speed
        speed_above_kmh: 900
        action: BLOCK

Boundaries, which the tests pin down: a limit named "above" fires only when
strictly exceeded, "under" only when strictly below, and a score exactly at a
threshold gets that threshold's decision. The rules run first; the decision is
the most severe of the fired rules' actions and the score's. Every decision
carries the rules that fired, the score and the model version behind it.
"""
import dataclasses
import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

APPROVE, REVIEW, BLOCK = "APPROVE", "REVIEW", "BLOCK"
ACTIONS = (APPROVE, REVIEW, BLOCK)  # in increasing severity
SECONDS_PER_DAY = 86400


class PolicyError(ValueError):
    """An invalid policy file; the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the rules may look at for one transaction."""

    amount: float
    merchant_category: str
    # Days since the card's first transaction seen by the engine (0 for a new card).
    card_age_days: float
    # Implied speed from the card's previous located transaction; None when undefined.
    speed_kmh: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Decision:
    action: str
    score: Optional[float]
    model_version: Optional[int]
    rules_fired: Tuple[str, ...] = ()
    # One human-readable line per reason: each fired rule, then the score.
    reasons: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Rule:
    """A named hard rule: `check(facts)` returns why it fired, or None."""

    name: str
    action: str
    check: Callable[[Facts], Optional[str]]


@dataclasses.dataclass(frozen=True)
class Thresholds:
    review: float
    block: float

    def action_for(self, score: float) -> str:
        if score >= self.block:
            return BLOCK
        if score >= self.review:
            return REVIEW
        return APPROVE


def severest(actions: Sequence[str], order: Sequence[str] = ACTIONS) -> str:
    """The most severe of `actions` by `order` (least severe first); APPROVE for none."""
    return max(actions, key=order.index, default=APPROVE)


@dataclasses.dataclass(frozen=True)
class Policy:
    thresholds: Thresholds
    rules: Tuple[Rule, ...] = ()
    on_model_error: str = REVIEW

    def fired_rules(self, facts: Facts) -> List[Tuple[Rule, str]]:
        """The rules that fire on `facts`, in policy order, each with its reason."""
        fired = []
        for rule in self.rules:
            why = rule.check(facts)
            if why is not None:
                fired.append((rule, why))
        return fired

    def decide(self, facts: Facts, score: Optional[float], model_version: Optional[int],
               model_error: str = "") -> Decision:
        """The decision for one transaction: rules first, then the score.

        With no score (`score` None, `model_error` saying why) the score's part of
        the decision is `on_model_error`.
        """
        fired = self.fired_rules(facts)
        actions = [rule.action for rule, _ in fired]
        reasons = [f"rule {rule.name}: {why} -> {rule.action}" for rule, why in fired]
        if score is None:
            actions.append(self.on_model_error)
            reasons.append(f"no model score ({model_error or 'not scored'}) -> "
                           f"{self.on_model_error}")
        else:
            by_score = self.thresholds.action_for(score)
            actions.append(by_score)
            reasons.append(f"score {score:.6f} from model version {model_version} -> {by_score}")
        return Decision(
            action=severest(actions),
            score=score,
            model_version=model_version,
            rules_fired=tuple(rule.name for rule, _ in fired),
            reasons=tuple(reasons),
        )


# --- rule types -----------------------------------------------------------------------


def _merchant_category_rule(spec: "PolicyFields") -> Callable[[Facts], Optional[str]]:
    categories = frozenset(spec.string_list("categories"))

    def check(facts: Facts) -> Optional[str]:
        if facts.merchant_category in categories:
            return f"merchant category '{facts.merchant_category}' is blocked"
        return None

    return check


def _new_card_amount_rule(spec: "PolicyFields") -> Callable[[Facts], Optional[str]]:
    amount_above = spec.number("amount_above", minimum=0.0)
    age_under = spec.number("card_age_under_days", minimum=0.0)

    def check(facts: Facts) -> Optional[str]:
        if facts.amount > amount_above and facts.card_age_days < age_under:
            return (f"amount {facts.amount:g} above {amount_above:g} on a card "
                    f"{facts.card_age_days:.2f} days old (under {age_under:g})")
        return None

    return check


def _travel_speed_rule(spec: "PolicyFields") -> Callable[[Facts], Optional[str]]:
    speed_above = spec.number("speed_above_kmh", minimum=0.0)

    def check(facts: Facts) -> Optional[str]:
        if facts.speed_kmh is not None and facts.speed_kmh > speed_above:
            return f"implied travel speed {facts.speed_kmh:.0f} km/h above {speed_above:g}"
        return None

    return check


def _amount_rule(spec: "PolicyFields") -> Callable[[Facts], Optional[str]]:
    amount_above = spec.number("amount_above", minimum=0.0)

    def check(facts: Facts) -> Optional[str]:
        if facts.amount > amount_above:
            return f"amount {facts.amount:g} above {amount_above:g}"
        return None

    return check


# Rule type -> (builder, the fields it reads besides name/type/action).
RULE_TYPES: Dict[str, Tuple[Callable, Tuple[str, ...]]] = {
    "merchant_category": (_merchant_category_rule, ("categories",)),
    "new_card_amount": (_new_card_amount_rule, ("amount_above", "card_age_under_days")),
    "travel_speed": (_travel_speed_rule, ("speed_above_kmh",)),
    "amount": (_amount_rule, ("amount_above",)),
}


# --- loading and validation -----------------------------------------------------------


class PolicyFields:
    """Typed access to one mapping of a policy file; errors name the field's path."""

    def __init__(self, data: Any, where: str, allowed: Sequence[str]):
        if not isinstance(data, Mapping):
            raise PolicyError(f"{where}: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(map(str, data)) - set(allowed))
        if unknown:
            raise PolicyError(f"{where}.{unknown[0]}: unknown field "
                              f"(known: {', '.join(allowed)})")
        self.data = data
        self.where = where

    def get(self, key: str, required: bool = True) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise PolicyError(f"{self.where}.{key}: required field is missing")
            return None
        return self.data[key]

    def number(self, key: str, minimum: Optional[float] = None,
               maximum: Optional[float] = None) -> float:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise PolicyError(f"{self.where}.{key}: expected a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise PolicyError(f"{self.where}.{key}: {value} is below {minimum}")
        if maximum is not None and value > maximum:
            raise PolicyError(f"{self.where}.{key}: {value} is above {maximum}")
        return float(value)

    def string(self, key: str, choices: Optional[Sequence[str]] = None,
               default: Optional[str] = None) -> str:
        value = self.get(key, required=default is None)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise PolicyError(f"{self.where}.{key}: expected a non-empty string, got {value!r}")
        if choices is not None and value not in choices:
            raise PolicyError(f"{self.where}.{key}: '{value}' is not one of "
                              f"{', '.join(choices)}")
        return value

    def string_list(self, key: str) -> List[str]:
        value = self.get(key)
        if not isinstance(value, list) or not value \
                or not all(isinstance(v, str) and v for v in value):
            raise PolicyError(f"{self.where}.{key}: expected a non-empty list of strings, "
                              f"got {value!r}")
        return value


def _parse_rule(data: Any, where: str, seen: set) -> Rule:
    if not isinstance(data, Mapping):
        raise PolicyError(f"{where}: expected a mapping, got {type(data).__name__}")
    rule_type = data.get("type")
    if rule_type not in RULE_TYPES:
        raise PolicyError(f"{where}.type: {rule_type!r} is not one of "
                          f"{', '.join(sorted(RULE_TYPES))}")
    builder, own_fields = RULE_TYPES[rule_type]
    spec = PolicyFields(data, where, ("name", "type", "action") + own_fields)
    name = spec.string("name")
    if name in seen:
        raise PolicyError(f"{where}.name: duplicate rule name '{name}'")
    seen.add(name)
    action = spec.string("action", choices=(REVIEW, BLOCK))
    return Rule(name=name, action=action, check=builder(spec))


def parse_policy(data: Any, where: str = "policy") -> Policy:
    """A Policy from the parsed YAML of a policy file; `where` prefixes error messages."""
    top = PolicyFields(data, where, ("thresholds", "rules", "on_model_error"))
    levels = PolicyFields(top.get("thresholds"), f"{where}.thresholds", ("review", "block"))
    review = levels.number("review", minimum=0.0, maximum=1.0)
    block = levels.number("block", minimum=0.0, maximum=1.0)
    if review > block:
        raise PolicyError(f"{where}.thresholds.review: {review} is above block ({block})")
    rules_data = top.get("rules", required=False) or []
    if not isinstance(rules_data, list):
        raise PolicyError(f"{where}.rules: expected a list, got {type(rules_data).__name__}")
    seen: set = set()
    rules = tuple(_parse_rule(item, f"{where}.rules[{i}]", seen)
                  for i, item in enumerate(rules_data))
    on_error = top.string("on_model_error", choices=ACTIONS, default=REVIEW)
    return Policy(thresholds=Thresholds(review=review, block=block), rules=rules,
                  on_model_error=on_error)


def read_policy_yaml(path: str) -> Any:
    """The content of a YAML policy file; PolicyError naming the file when unreadable."""
    import yaml  # pylint: disable=import-outside-toplevel

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as err:
        raise PolicyError(f"cannot read policy file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise PolicyError(f"policy file {path} is not valid YAML: "
                          f"{' '.join(str(err).split())}") from err


def load_policy(path: str) -> Policy:
    """Reads and validates a YAML policy file; PolicyError names the file and field."""
    return parse_policy(read_policy_yaml(path), where=path)


def default_policy_path() -> str:
    """The policy shipped with riskpipe (engine/policy_default.yaml)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "policy_default.yaml")


def card_age_days(first_seen: int, now: int) -> float:
    """Days between a card's first transaction and `now` (Unix seconds)."""
    return (now - first_seen) / SECONDS_PER_DAY
