"""A bank's table of credit applications, one row per application, with a known truth.

Behind `riskpipe generate --kind credit`. Layout:

    <out>/applications.csv   header row, columns in COLUMNS order (label `default` last),
                             rows in application_date order; an empty cell is a
                             missing value
    <out>/generation.json    kind, parameters (seed among them), row count and the
                             realised default rate, written last

Applicants are drawn first (age, then employment, tenure, income, housing,
credit history, region), each from the ones before, so the columns are
correlated as a bank's are; a hidden financial-stress factor moves debt,
utilisation, delinquencies and debt consolidation together. Then a loan
(purpose, amount, duration), then missing values: income is missing at random
(~3%, a capture gap), years_employed is unknown for ~6% (more often for the
self-employed and unemployed), credit_utilization is missing for applicants
without revolving credit (~10%, mostly those without any credit).
years_employed is the tenure in the current job: 0 for the retired, students
and the unemployed.

The ground truth is a logit that no single column and no linear model
captures (ground_truth_logit): a saturating effect of past delinquencies, a
U-shaped age, debt_to_income interacting with credit_utilization, the loan
relative to income, purpose, housing and employment effects, and an unknown
years_employed as a risk signal in itself; plus risk the bank cannot see
(UNOBSERVED_RISK) and Bernoulli outcomes. At 30k rows and a 10% default
rate a well-fitted model (gradient boosting) reaches a holdout ROC-AUC of
about 0.82 (the true logit itself about 0.83), a logistic regression on the
raw numeric columns about 0.78.
The intercept is solved by bisection on the drawn applicants, so the realised
default rate is `default_rate` to within one application.

`region` is drawn independently of everything else and IGNORED by the ground
truth (IGNORED_BY_GROUND_TRUTH): it carries no information about default, so a
model's reason codes should always rank a GROUND_TRUTH_DRIVERS column above it.
The same arguments give byte-identical files.
"""
import dataclasses
import datetime
import json
import os
from typing import Dict, List

import numpy as np
import pandas as pd

from common.errors import UsageError
from datagen import dataset

TABLE = "applications.csv"
MANIFEST = dataset.MANIFEST
FORMAT_VERSION = 1
KIND = "credit"
LABEL = "default"
DEFAULT_ROWS = 20_000
DEFAULT_DEFAULT_RATE = 0.1
DEFAULT_START_DATE = "2024-01-01"
MONTHS = 24

PURPOSES = ("car", "home_improvement", "debt_consolidation", "education", "business", "other")
HOUSING = ("own", "mortgage", "rent", "free")
REGIONS = ("north", "south", "east", "west", "central")
EMPLOYMENT_TYPES = ("salaried", "self_employed", "retired", "student", "unemployed")
LOAN_DURATIONS = (12, 24, 36, 48, 60, 72)

# Column -> how applications.csv writes it: decimals of a float (empty when
# missing), "int" or "text". The DataFrame holds the values already rounded so.
COLUMNS = {
    "application_id": "text",
    "application_date": "text",
    "income": 0,
    "debt_to_income": 3,
    "age": "int",
    "years_employed": 1,
    "existing_credits": "int",
    "past_delinquencies": "int",
    "credit_utilization": 3,
    "loan_amount": "int",
    "loan_duration_months": "int",
    "purpose": "text",
    "housing": "text",
    "region": "text",
    "employment_type": "text",
    LABEL: "int",
}
GROUND_TRUTH_DRIVERS = (
    "income", "debt_to_income", "age", "years_employed", "existing_credits",
    "past_delinquencies", "credit_utilization", "loan_amount", "loan_duration_months",
    "purpose", "housing", "employment_type",
)
IGNORED_BY_GROUND_TRUTH = ("region",)

# Log-odds effects of the categorical columns, in the order of their values.
PURPOSE_EFFECT = np.array([-0.15, -0.25, 0.35, 0.10, 0.50, 0.20])
HOUSING_EFFECT = np.array([-0.30, -0.20, 0.20, 0.10])
EMPLOYMENT_EFFECT = np.array([0.0, 0.30, -0.10, 0.30, 0.85])
# Standard deviation of the risk the table does not show (life events, ...), in log-odds.
UNOBSERVED_RISK = 1.0
# Median annual income of a salaried applicant at the income peak age.
MEDIAN_INCOME = 46_000.0
_APPLICANTS, _LOANS, _GAPS, _OUTCOMES = 11, 12, 13, 14


@dataclasses.dataclass(frozen=True)
class Summary:
    out: str
    rows: int
    defaults: int


def _rng(seed: int, stream: int) -> np.random.Generator:
    """A stream per stage (applicants, loans, gaps, outcomes): changing how one stage
    draws leaves the others' draws as they were."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _choose(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One index per row of `weights` (rows x options, not normalised).

    rng.choice takes one mix for all rows; here every applicant has their own
    (a student's housing is not a retiree's), still in one vectorised draw.
    """
    cumulative = np.cumsum(weights, axis=1)
    draw = rng.random(len(weights)) * cumulative[:, -1]
    return np.minimum((draw[:, None] >= cumulative).sum(axis=1), weights.shape[1] - 1)


def _dates(rng: np.random.Generator, rows: int, start_date: str) -> np.ndarray:
    """Sorted application dates, uniform over MONTHS months from `start_date`."""
    start = datetime.date.fromisoformat(start_date)
    try:
        end = start.replace(year=start.year + MONTHS // 12)
    except ValueError:  # 29 February
        end = datetime.date(start.year + MONTHS // 12, 3, 1)
    offsets = np.sort(rng.integers(0, (end - start).days, rows))
    return (np.datetime64(start.isoformat(), "D") + offsets).astype(str).astype(object)


def _applicants(rng: np.random.Generator, rows: int) -> Dict[str, np.ndarray]:
    """Who applies: age, employment, tenure, income, housing, credit history, region.

    `stress` is a hidden financial-stress factor: it makes debt, utilisation and
    delinquencies move together, as they do in a bank's data, without being a
    column itself.
    """
    age = np.floor(18 + 62 * rng.beta(2.2, 3.8, rows)).astype(np.int64)
    employment = _choose(rng, np.column_stack([
        0.70 * np.where(age < 67, 1.0, 0.1),
        np.full(rows, 0.14),
        0.9 * _sigmoid((age - 63) / 2.5),
        0.6 * _sigmoid((24 - age) / 1.5),
        np.full(rows, 0.06),
    ]))
    working = employment <= 1
    tenure = np.minimum(age - 18, rng.gamma(1.6, 3.5 + 0.08 * (age - 18)))
    years_employed = np.round(np.where(working, tenure, 0.0), 1)
    log_income = (np.log(MEDIAN_INCOME) + np.array([0.0, 0.1, -0.35, -1.1, -0.9])[employment]
                  - 0.0009 * (age - 50) ** 2 + 0.02 * np.minimum(years_employed, 20)
                  + 0.55 * rng.standard_normal(rows))
    income = np.maximum(3000.0, np.round(np.exp(log_income), -2))
    housing = _choose(rng, np.column_stack([
        1.2 * _sigmoid((age - 55) / 6) + 0.05,
        0.9 * _sigmoid((age - 30) / 4) * _sigmoid((log_income - np.log(35_000)) / 0.4)
        * (age < 70),
        np.full(rows, 0.6),
        0.5 * _sigmoid((26 - age) / 2) + 0.03,
    ]))
    stress = rng.standard_normal(rows)
    return {"age": age, "employment": employment, "years_employed": years_employed,
            "income": income, "housing": housing, "stress": stress,
            **_credit_history(rng, rows, housing, stress),
            "region": _choose(rng, np.tile([0.22, 0.24, 0.18, 0.20, 0.16], (rows, 1)))}


def _credit_history(rng, rows, housing, stress) -> Dict[str, np.ndarray]:
    """Existing credits, revolving utilisation, debt-to-income and past delinquencies."""
    credits = np.minimum(8, rng.poisson(1.3 + 0.5 * (housing == 1) + 0.3 * np.maximum(stress, 0)))
    utilization = np.clip(1.15 * _sigmoid(-0.6 + 0.9 * stress + 0.5 * rng.standard_normal(rows))
                          + 0.05 * rng.standard_normal(rows), 0.0, 1.2)
    debt_to_income = np.minimum(1.5, np.exp(np.log(0.25) + 0.3 * stress + 0.08 * credits
                                            + 0.4 * rng.standard_normal(rows)))
    # Negative binomial with shape 0.5: mostly 0, a heavy tail.
    mean = np.exp(-1.7 + 0.8 * stress)
    delinquencies = np.minimum(25, rng.negative_binomial(0.5, 0.5 / (0.5 + mean)))
    return {"existing_credits": credits, "credit_utilization": np.round(utilization, 3),
            "debt_to_income": np.round(debt_to_income, 3), "past_delinquencies": delinquencies}


def _loans(rng: np.random.Generator, people: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """What they ask for: a purpose fitting their situation, an amount fitting their income."""
    rows, age, employment = len(people["age"]), people["age"], people["employment"]
    owner = people["housing"] <= 1
    purpose = _choose(rng, np.column_stack([
        np.full(rows, 0.30),
        0.08 + 0.25 * owner,
        0.18 + 0.10 * (people["stress"] > 0.5),
        0.02 + 0.30 * (employment == 3) + 0.10 * _sigmoid((28 - age) / 3),
        0.03 + 0.30 * (employment == 1),
        np.full(rows, 0.10),
    ]))
    base = np.array([15_000, 12_000, 9_000, 11_000, 25_000, 5_000])[purpose]
    amount = base * (people["income"] / MEDIAN_INCOME) ** 0.45 * np.exp(
        0.5 * rng.standard_normal(rows))
    amount = np.clip(np.round(amount, -2), 500, 200_000).astype(np.int64)
    longer = np.array([0.6, 0.4, 0.0, 0.5, 0.3, -0.3])[purpose]
    step = np.clip(np.round(1.2 + 0.9 * np.log(amount / 8000) + longer
                            + 0.9 * rng.standard_normal(rows)), 0, len(LOAN_DURATIONS) - 1)
    return {"purpose": purpose, "loan_amount": amount,
            "loan_duration_months": np.array(LOAN_DURATIONS)[step.astype(np.int64)]}


def _gaps(rng: np.random.Generator, people: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Masks of missing income, years_employed and utilisation, drawn after the values.

    Drawn on their own stream so that a model sees the same applicants with and
    without gaps; the unknown tenure is more common where a bank's forms are
    hardest to fill (self-employed, unemployed), so it is a risk signal.
    """
    rows = len(people["age"])
    unknown_tenure = np.array([0.045, 0.12, 0.05, 0.06, 0.14])[people["employment"]]
    no_revolving = np.where(people["existing_credits"] == 0, 0.30, 0.05)
    return {"income": rng.random(rows) < 0.03,
            "years_employed": rng.random(rows) < unknown_tenure,
            "credit_utilization": rng.random(rows) < no_revolving}


def ground_truth_logit(table: pd.DataFrame, true_income: np.ndarray) -> np.ndarray:
    """The log-odds of default before the intercept, from GROUND_TRUTH_DRIVERS only.

    `true_income` is the applicant's income, also where the table lacks it (a
    capture gap changes nothing about the applicant). Missing utilisation (no
    revolving credit: a thin file) and unknown years_employed are risks of their own.
    """
    utilization = table["credit_utilization"].to_numpy()
    thin_file = np.isnan(utilization)
    utilization = np.where(thin_file, 0.0, utilization)
    dti = table["debt_to_income"].to_numpy()
    years = table["years_employed"].to_numpy()
    unknown_years = np.isnan(years)
    loan_to_income = table["loan_amount"].to_numpy() / true_income
    return (1.4 * (1 - np.exp(-0.9 * table["past_delinquencies"].to_numpy()))
            + 0.0016 * (table["age"].to_numpy() - 46) ** 2
            + 0.3 * dti + 2.5 * dti * utilization + 1.2 * np.maximum(utilization - 0.7, 0)
            + 0.25 * thin_file
            + 1.1 * np.minimum(loan_to_income, 2.0)
            - 0.25 * np.log(true_income / MEDIAN_INCOME)
            - 0.25 * np.log1p(np.where(unknown_years, 0.0, years)) + 0.5 * unknown_years
            + 0.10 * table["existing_credits"].to_numpy()
            + 0.01 * (table["loan_duration_months"].to_numpy() - 36)
            + PURPOSE_EFFECT[_codes(table["purpose"], PURPOSES)]
            + HOUSING_EFFECT[_codes(table["housing"], HOUSING)]
            + EMPLOYMENT_EFFECT[_codes(table["employment_type"], EMPLOYMENT_TYPES)])


def _codes(column: pd.Series, values) -> np.ndarray:
    return pd.Categorical(column, categories=values).codes


def _outcomes(rng: np.random.Generator, logit: np.ndarray, default_rate: float) -> np.ndarray:
    """Defaults drawn from `logit` plus unobserved risk, with an intercept solved by bisection.

    The intercept is the smallest (to 1e-9) that makes round(default_rate * rows)
    of the drawn applicants default, so the realised rate is the target.
    """
    risk = logit + UNOBSERVED_RISK * rng.standard_normal(logit.size)
    # Bernoulli(sigmoid(risk + b)) as a threshold: default when risk + b > -logistic noise.
    noise = np.log(rng.random(logit.size)) - np.log1p(-rng.random(logit.size))
    score = risk + noise
    wanted = round(default_rate * logit.size)
    low, high = -40.0, 40.0
    while high - low > 1e-9:
        middle = (low + high) / 2
        if np.count_nonzero(score + middle > 0) >= wanted:
            high = middle
        else:
            low = middle
    return (score + high > 0).astype(np.int64)


def _check(rows: int, default_rate: float, start_date: str) -> None:
    if rows < 1:
        raise UsageError(f"rows must be at least 1, got {rows}")
    if not 0.0 < default_rate < 0.5:
        raise UsageError(f"default_rate must be strictly between 0 and 0.5, got {default_rate}")
    try:
        datetime.date.fromisoformat(start_date)
    except ValueError:
        raise UsageError(f"start_date must be a date YYYY-MM-DD, got '{start_date}'") from None


def simulate_applications(rows: int = DEFAULT_ROWS, default_rate: float = DEFAULT_DEFAULT_RATE,
                          seed: int = 0, start_date: str = DEFAULT_START_DATE) -> pd.DataFrame:
    """`rows` applications in COLUMNS order (NaN where missing), label `default` last."""
    _check(rows, default_rate, start_date)
    rng = _rng(seed, _APPLICANTS)
    dates = _dates(rng, rows, start_date)
    people = _applicants(rng, rows)
    people.update(_loans(_rng(seed, _LOANS), people))
    missing = _gaps(_rng(seed, _GAPS), people)
    table = pd.DataFrame({
        "application_id": np.array([f"A{i:06d}" for i in range(1, rows + 1)], dtype=object),
        "application_date": dates,
        **{name: people[name] for name in (
            "income", "debt_to_income", "age", "years_employed", "existing_credits",
            "past_delinquencies", "credit_utilization", "loan_amount", "loan_duration_months")},
        "purpose": np.array(PURPOSES, dtype=object)[people["purpose"]],
        "housing": np.array(HOUSING, dtype=object)[people["housing"]],
        "region": np.array(REGIONS, dtype=object)[people["region"]],
        "employment_type": np.array(EMPLOYMENT_TYPES, dtype=object)[people["employment"]],
    })
    for name, mask in missing.items():
        table[name] = np.where(mask, np.nan, table[name].to_numpy(np.float64))
    logit = ground_truth_logit(table, people["income"])
    table[LABEL] = _outcomes(_rng(seed, _OUTCOMES), logit, default_rate)
    return table[list(COLUMNS)]


def table_csv(table: pd.DataFrame) -> str:
    """The CSV text of `table`: header row, then one line per application.

    No value needs quoting: ids, dates and categories are fixed tokens.
    """
    columns = [_formatted(table[name].to_numpy(), kind) for name, kind in COLUMNS.items()]
    lines = map(",".join, zip(*columns))
    return "\n".join([",".join(COLUMNS), *lines]) + "\n"


def _formatted(values: np.ndarray, kind) -> List[str]:
    if kind == "text":
        return values.tolist()
    if kind == "int":
        return values.astype(np.int64).astype(str).tolist()
    missing = np.isnan(values)
    text = [f"{v:.{kind}f}" for v in np.where(missing, 0.0, values).tolist()]
    return np.where(missing, "", np.array(text, dtype=object)).tolist()


def manifest(table: pd.DataFrame, default_rate: float, seed: int, start_date: str) -> dict:
    defaults = int(table[LABEL].sum())
    return {
        "format_version": FORMAT_VERSION,
        "generator": "riskpipe generate",
        "kind": KIND,
        "parameters": {"rows": len(table), "default_rate": default_rate, "seed": seed,
                       "start_date": start_date},
        "layout": TABLE,
        "columns": list(COLUMNS),
        "label": LABEL,
        "rows": len(table),
        "defaults": defaults,
        "realised_default_rate": defaults / len(table),
        "ground_truth_drivers": list(GROUND_TRUTH_DRIVERS),
        "ignored_by_ground_truth": list(IGNORED_BY_GROUND_TRUTH),
    }


def write_credit_table(out_dir: str, rows: int = DEFAULT_ROWS,
                       default_rate: float = DEFAULT_DEFAULT_RATE, seed: int = 0,
                       start_date: str = DEFAULT_START_DATE, overwrite: bool = False) -> Summary:
    """Simulates the applications and writes TABLE, then MANIFEST, to `out` atomically.

    `out_dir` must be missing or empty, or with `overwrite` a directory riskpipe
    generate wrote (dataset.check_output_dir).
    """
    out = out_dir
    dataset.check_output_dir(out, overwrite)
    table = simulate_applications(rows, default_rate, seed, start_date)
    totals = manifest(table, default_rate, seed, start_date)
    with dataset.staging_dir(out, overwrite) as staging:
        try:
            with open(os.path.join(staging, TABLE), "w", encoding="utf-8", newline="") as f:
                f.write(table_csv(table))
            with open(os.path.join(staging, MANIFEST), "w") as f:
                json.dump(totals, f, indent=2)
                f.write("\n")
        except OSError as err:
            raise UsageError(f"cannot write --out {out}: {err.strerror or err}") from err
    return Summary(out=out, rows=totals["rows"], defaults=totals["defaults"])
