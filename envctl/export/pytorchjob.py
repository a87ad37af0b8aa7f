"""`--format pytorchjob`: Kubeflow's `kubeflow.org/v1` PyTorchJob (training-operator v1.x).

Engine facts (training-operator@v1.9.0; research §1.1):
- replica types Master (1) and Worker (N-1), each pod `<job>-<type>-<i>`; the container must
  be named `pytorch` and its port `pytorchjob-port` (pkg/apis/kubeflow.org/v1/pytorch_types.go),
  which the master's Service exposes.
- The operator sets MASTER_ADDR (the master's Service) and MASTER_PORT (the port
  `pytorchjob-port`), and PET_NODE_RANK = RANK = the pod's rank, master 0 and worker i → i+1
  (pkg/controller.v1/pytorch/envvar.go): the prelude's master and rank. Its WORLD_SIZE counts
  replicas × nprocPerNode and is not used (kubeflow/trainer #1790).
- `runPolicy.backoffLimit: 0` with `restartPolicy: Never`: a failed pod fails the job.
"""

from __future__ import annotations

from envctl.export import k8s_pod
from envctl.export.formats import Format
from envctl.export.model import Export


def objects(export: Export) -> list[dict]:
    names = [f"{export.job}-master-0"] + [f"{export.job}-worker-{i}" for i in range(export.nnodes - 1)]
    spec = k8s_pod.spec_for(export, rank_from="PET_NODE_RANK", master_from="MASTER_ADDR", names=names)
    container = k8s_pod.container(export, "pytorch", [], [{"name": "pytorchjob-port", "containerPort": export.master_port}])
    pod = k8s_pod.template(export, k8s_pod.pod_spec(export, container))
    replica = {"restartPolicy": "Never", "template": pod}
    job = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
           "metadata": {"name": export.job, "labels": k8s_pod.labels(export)},
           "spec": {"runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "None"},
                    "pytorchReplicaSpecs": {"Master": {"replicas": 1, **replica},
                                            "Worker": {"replicas": export.nnodes - 1, **replica}}}}
    return [k8s_pod.config_map(export, spec), job]


def write(export: Export) -> dict[str, str]:
    return k8s_pod.files(export, objects(export))


def how_to_run(export: Export) -> list[str]:
    return [
        f"`kubectl apply -f {export.job}.yaml` on a cluster with Kubeflow's training operator v1 (the PyTorchJob "
        "CRD, kubeflow.org/v1). Without a gang scheduler configured for it (Volcano or scheduler-plugins), its pods "
        "are scheduled one by one.",
        "Rank: PET_NODE_RANK (the operator's pod rank). Master: MASTER_ADDR (the master's Service).",
        "`envctl export --check DIR --crd kubeflow.org_pytorchjobs.yaml` checks it offline.",
    ]


FORMAT = Format("pytorchjob", "a Kubeflow PyTorchJob (kubeflow.org/v1)", write, how_to_run, k8s_pod.check)
