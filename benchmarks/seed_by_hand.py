"""The seed lab the way its setup.sh and notebook do it, with the SDKs, one step after another and
each waited for: (provider registration, as setup.sh does) resource group, workspace, compute
instance, cluster, then each job (submitted and streamed to its end). The baseline of the Azure
emulator benchmark.

    python benchmarks/seed_by_hand.py SUFFIX TRAINING_FOLDER   (AZURE_* from the emulator's env)
"""

import os
import sys

from azure.ai.ml import Input, MLClient, command
from azure.ai.ml._azure_environments import _get_base_url_from_metadata
from azure.ai.ml.entities import AmlCompute, ComputeInstance, Workspace
from azure.identity import DefaultAzureCredential
from azure.mgmt.resource.resources import ResourceManagementClient


def main(suffix: str, training: str) -> None:
    sub, rg, ws = os.environ["AZURE_SUBSCRIPTION_ID"], f"rg-dp100-{suffix}", f"mlw-dp100-{suffix}"
    cred = DefaultAzureCredential()
    base = _get_base_url_from_metadata()
    arm = ResourceManagementClient(cred, sub, base_url=base, credential_scopes=[base + "/.default"])
    arm.providers.register(
        "Microsoft.MachineLearningServices"
    )  # setup.sh's first line (without --wait)
    arm.resource_groups.create_or_update(rg, {"location": "eastus"})
    MLClient(cred, sub, rg, enable_telemetry=False).workspaces.begin_create(
        Workspace(name=ws, location="eastus")
    ).result()
    ml = MLClient(cred, sub, rg, ws, enable_telemetry=False)
    ml.compute.begin_create_or_update(
        ComputeInstance(name=f"ci-{suffix}", size="STANDARD_DS11_V2")
    ).result()
    ml.compute.begin_create_or_update(
        AmlCompute(name="aml-cluster", size="STANDARD_DS11_V2", min_instances=0, max_instances=2)
    ).result()
    data = Input(type="uri_file", path=os.path.join(training, "data", "diabetes.csv"))
    for script, name, tags in (
        ("train-model-mlflow.py", "diabetes-train-mlflow", {"model_type": "LogisticRegression"}),
        ("train-model-autolog.py", "diabetes-train-autolog", {}),
    ):
        job = command(
            code=training,
            command=f"python {script} --training_data ${{{{inputs.training_data}}}}",
            inputs={"training_data": data},
            environment="AzureML-sklearn-1.5@latest",
            compute="aml-cluster",
            display_name=name,
            experiment_name="diabetes-training",
            tags=tags,
        )
        ml.jobs.stream(ml.jobs.create_or_update(job).name)


if __name__ == "__main__":
    main(*sys.argv[1:3])
