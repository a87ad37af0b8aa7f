"""`--format volcano` (the default, for Ascend and Cambricon alike): a `batch.volcano.sh/v1alpha1`
Job with gang scheduling.

Engine facts (research scale-out.md §1.1, §1.7; volcano@ed72c7c8):
- `minAvailable: N` with `schedulerName: volcano`: all N pods start together or none (gang);
  `queue: default`; `maxRetry`; `policies`: a pod evicted restarts the job (MindCluster's
  vcjob examples), a pod failed ends it, as `exec --nodes` stops every node when one fails.
- `env` plugin: VC_TASK_INDEX (= VK_TASK_INDEX) is the pod's index in its task
  (pkg/controllers/job/plugins/env/const.go): the prelude's rank.
- `svc` plugin: each pod's hostname is its name `<job>-<task>-<i>` and its subdomain the job
  name, with a headless Service named like the job (plugins/svc/svc.go, helpers.go PodNameFmt
  "%s-%s-%d"): the master is `<job>-node-0.<job>`.
- Volcano's own WORLD_SIZE/RANK (its pytorch plugin) count pods; the prelude does not use them.
- NPU: `ring-controller.atlas` on job and pod, ASCEND_VISIBLE_DEVICES from the annotation the
  Ascend plugin writes (MindCluster docs/en/scheduling/api/ascend_job.md).
"""

from __future__ import annotations

from envctl.export import k8s_pod
from envctl.export.formats import Format
from envctl.export.model import Export

TASK = "node"


def objects(export: Export) -> list[dict]:
    names = [f"{export.job}-{TASK}-{i}" for i in range(export.nnodes)]
    spec = k8s_pod.spec_for(export, rank_from="VC_TASK_INDEX", master=f"{names[0]}.{export.job}", names=names)
    extra_env = [k8s_pod.ascend_visible_devices()] if export.device_kind == "npu" else []
    container = k8s_pod.container(export, "envctl", extra_env, [{"name": "master", "containerPort": export.master_port}])
    job = {
        "apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job",
        "metadata": {"name": export.job, "labels": k8s_pod.labels(export)},
        "spec": {
            "schedulerName": "volcano", "minAvailable": export.nnodes, "queue": "default", "maxRetry": 3,
            "policies": [{"event": "PodEvicted", "action": "RestartJob"}, {"event": "PodFailed", "action": "TerminateJob"}],
            "plugins": {"env": [], "svc": []},
            "tasks": [{"name": TASK, "replicas": export.nnodes,
                       "template": k8s_pod.template(export, k8s_pod.pod_spec(export, container))}],
        },
    }
    return [k8s_pod.config_map(export, spec), job]


def write(export: Export) -> dict[str, str]:
    return k8s_pod.files(export, objects(export))


def how_to_run(export: Export) -> list[str]:
    return [
        f"`kubectl apply -f {export.job}.yaml` on a cluster with Volcano (the vc-scheduler and the job controller with "
        "its env and svc plugins); the queue `default` must exist. Volcano starts the "
        f"{export.nnodes} pods together (minAvailable {export.nnodes}) or not at all.",
        f"Rank: VC_TASK_INDEX (Volcano's env plugin). Master: {export.job}-{TASK}-0.{export.job} (the svc plugin's "
        "hostname and subdomain).",
        *(["Ascend: Volcano needs MindCluster's ascend-volcano-plugin (it writes the huawei.com/Ascend910 annotation "
           "ASCEND_VISIBLE_DEVICES is read from); add a nodeSelector `accelerator-type` for your servers."]
          if export.device_kind == "npu" else []),
        f"`envctl export --check DIR --crd batch.volcano.sh_jobs.yaml` checks it offline.",
    ]


FORMAT = Format("volcano", "a Volcano Job (batch.volcano.sh/v1alpha1), gang-scheduled", write, how_to_run,
                k8s_pod.check)
