"""`--format ascendjob`: MindCluster's `mindxdl.gitee.com/v1` AscendJob (ascend-operator).

Engine facts (mind-cluster@22bb3d98: docs/en/scheduling/api/ascend_job.md,
environment_variable_description.md Table 2, component/ascend-operator/pkg/controllers/v1/consts.go;
research §1.1, §1.7):
- replica types Master (1) and Worker (N-1); the container must be named `ascend` and its port
  `ascendjob-port` (default 2222); `schedulerName: volcano` with
  `runPolicy.schedulingPolicy.{minAvailable, queue}` (gang); `successPolicy: AllWorkers`.
- label `framework: pytorch`: the operator then sets MASTER_ADDR (the master pod's Service),
  MASTER_PORT and RANK = the pod's rank (node rank): the prelude's master and rank. Its
  WORLD_SIZE counts NPUs and LOCAL_RANK is a list ("{0,1,2,3}"): neither is used. The framework
  label is pytorch for every launcher, msrun included: the `mindspore` mode injects the dynamic
  cluster's MS_* variables for a Scheduler replica, while msrun starts its own scheduler from
  envctl's contract (research open question 4).
- `ring-controller.atlas` on job and pod; ASCEND_VISIBLE_DEVICES from the annotation.
"""

from __future__ import annotations

from envctl.export import k8s_pod
from envctl.export.formats import Format
from envctl.export.model import Export


def objects(export: Export) -> list[dict]:
    names = [f"{export.job}-master-0"] + [f"{export.job}-worker-{i}" for i in range(export.nnodes - 1)]
    spec = k8s_pod.spec_for(export, rank_from="RANK", master_from="MASTER_ADDR", names=names)
    extra_env = [k8s_pod.ascend_visible_devices()] if export.device_kind == "npu" else []
    container = k8s_pod.container(export, "ascend", extra_env, [{"name": "ascendjob-port", "containerPort": export.master_port}])
    pod = k8s_pod.template(export, k8s_pod.pod_spec(export, container))
    replica = {"restartPolicy": "Never", "template": pod}
    job = {"apiVersion": "mindxdl.gitee.com/v1", "kind": "AscendJob",
           "metadata": {"name": export.job, "labels": {**k8s_pod.labels(export), "framework": "pytorch"}},
           "spec": {"schedulerName": "volcano",
                    "runPolicy": {"schedulingPolicy": {"minAvailable": export.nnodes, "queue": "default"}},
                    "successPolicy": "AllWorkers",
                    "replicaSpecs": {"Master": {"replicas": 1, **replica},
                                     "Worker": {"replicas": export.nnodes - 1, **replica}}}}
    return [k8s_pod.config_map(export, spec), job]


def write(export: Export) -> dict[str, str]:
    return k8s_pod.files(export, objects(export))


def how_to_run(export: Export) -> list[str]:
    return [
        f"`kubectl apply -f {export.job}.yaml` on a cluster with MindCluster: ascend-operator (the AscendJob CRD), "
        "Volcano with ascend-volcano-plugin, ascend-device-plugin; the queue `default` must exist.",
        "Rank: RANK (the operator's pod rank for framework pytorch). Master: MASTER_ADDR (the master's Service).",
        "Add a nodeSelector `accelerator-type` (e.g. module-910b-8) for your servers.",
        "`envctl export --check DIR --crd mindxdl.gitee.com_ascendjobs.yaml` checks it offline.",
    ]


def _check(directory, crds):
    from envctl.export.check import check_directory

    return check_directory(directory, crds)


FORMAT = Format("ascendjob", "a MindCluster AscendJob (mindxdl.gitee.com/v1)", write, how_to_run, _check)
