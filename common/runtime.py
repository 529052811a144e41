"""Process set-up that every riskpipe entry point runs before TensorFlow is imported.

The CLI (cli/main.py) and the tests' conftest.py call it; Beam worker
processes and TFX component subprocesses inherit the environment it sets. The
pipeline image sets the same variable for the Kubeflow component containers,
which start TFX's entry point rather than the CLI.
"""
import logging
import os
import re
import sys
import warnings

KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
TF_LOG_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# Hides the CUDA plugin registration errors TensorFlow prints at import on a
# machine without a GPU; real failures still raise Python exceptions.
QUIET_TF_LOG_LEVEL = "3"
# Modules that warn at import about versions the lock pins: google-api-core that
# Python 3.10 is near its end of support (TFX 1.16 requires Python < 3.11), and
# google-cloud-aiplatform about google-cloud-storage < 3 (TFX 1.16's pin).
STARTUP_FUTURE_WARNINGS = ("google.api_core._python_version_support",
                           "google.cloud.aiplatform.models")


def use_keras_2() -> None:
    """Makes `tf.keras` Keras 2 (tf-keras): tensorflow-transform and tfmot need it.

    TF 2.16 reads the variable at its first import, so this must run before it.
    """
    os.environ[KERAS_VARIABLE] = "1"


def use_eigen_kernels() -> None:
    """Makes TensorFlow run its own (Eigen) CPU kernels rather than oneDNN's: the model server's.

    A served call is a few small ops per transaction, where oneDNN's per-call
    set-up costs more than the arithmetic (the README gives the figures, under
    serve). A value the user set wins. TensorFlow reads the variable at its
    first import, so this must run before it.
    """
    os.environ.setdefault(ONEDNN_VARIABLE, "0")


def skip_tensorflow_teardown_errors(unraisable, default_hook=sys.__unraisablehook__) -> None:
    """sys.unraisablehook that drops TensorFlow 2.16's AtomicFunction.__del__ errors.

    Functions of models loaded in process (Trainer, Evaluator, the cost report)
    outlive the command and are deleted during interpreter teardown, after the
    globals their __del__ needs are gone; Python would print one traceback per
    function.
    """
    if getattr(unraisable.object, "__qualname__", "") == "AtomicFunction.__del__":
        return
    default_hook(unraisable)


def quiet_startup(verbose: bool) -> None:
    """Hides TensorFlow's start-up noise, unless `verbose` or the user chose a log level."""
    if verbose or TF_LOG_VARIABLE in os.environ:
        return
    os.environ[TF_LOG_VARIABLE] = QUIET_TF_LOG_LEVEL
    # TensorFlow's Python logger: deprecation notices from inside TFX and TFMA.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for module in STARTUP_FUTURE_WARNINGS:
        warnings.filterwarnings("ignore", category=FutureWarning, module=re.escape(module))
    # Child processes (Beam workers) read the same filters from the environment.
    filters = [f"ignore::FutureWarning:{module}" for module in STARTUP_FUTURE_WARNINGS]
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"),
                                                          *filters]))
