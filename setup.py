"""riskpipe: a TFX pipeline and TF-Serving-compatible fleet for fraud and credit risk scoring."""
from setuptools import find_packages, setup

setup(
    name="riskpipe",
    version="0.1.0",
    description="TFX risk-scoring pipeline, TF-Serving-compatible model server and risk engine",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["common*", "datagen*", "components*", "pipeline*", "serving*",
                                    "engine*", "ledger*", "monitor*", "cli*", "kubeflow*"]),
    package_data={"": ["*.pbtxt", "*.yaml", "*.json"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]==2.59.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "tensorflow-model-optimization==0.8.1",
        "tensorflow-serving-api==2.16.1",
    ],
    entry_points={"console_scripts": ["riskpipe=cli.main:main"]},
)
