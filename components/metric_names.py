"""Names of the model-quality metrics, as the Evaluator, the Trainer's reports,
the run summary and `riskpipe report --json` write them (both tasks)."""

EXAMPLE_COUNT = "example_count"
ROC_AUC = "roc_auc"
PR_AUC = "pr_auc"
PRECISION = "precision"
RECALL = "recall"
RECALL_AT_FPR = "recall_at_1pct_fpr"
# Credit: the Kolmogorov-Smirnov statistic (the largest gap between the
# cumulative score distributions of bads and goods), Gini = 2 * ROC-AUC - 1,
# and the Brier score (mean squared error of the probability).
KS = "ks"
GINI = "gini"
BRIER = "brier"
