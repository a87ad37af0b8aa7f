"""`--format k8s-job`: a plain `batch/v1` Indexed Job and a headless Service; no add-ons.

Engine facts (kubernetes.io/docs/tasks/job/job-with-pod-to-pod-communication/; research §1.1):
- `completionMode: Indexed` gives each pod JOB_COMPLETION_INDEX (0..N-1) and the hostname
  `<job>-<index>`; with `subdomain: <service>` and a headless Service of that name selecting the
  pods, `<job>-<index>.<service>` resolves: the prelude's rank and master `<job>-0.<job>`.
- `completions = parallelism = N`; `backoffLimit: 0`: one failed pod fails the Job, whose
  running pods are then ended, as `exec --nodes` stops every node when one fails.
- No gang scheduling: the pods are scheduled one by one; some may start while others wait for
  room (the prelude waits for every node, up to its timeout). Said in the README.
"""

from __future__ import annotations

from envctl.export import k8s_pod
from envctl.export.formats import Format
from envctl.export.model import Export


def objects(export: Export) -> list[dict]:
    names = [f"{export.job}-{i}" for i in range(export.nnodes)]
    spec = k8s_pod.spec_for(export, rank_from="JOB_COMPLETION_INDEX", master=f"{names[0]}.{export.job}", names=names)
    container = k8s_pod.container(export, "envctl", [], [{"name": "master", "containerPort": export.master_port}])
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": export.job, "labels": {k8s_pod.JOB_LABEL: export.job}},
               "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                        "selector": {k8s_pod.JOB_LABEL: export.job},
                        "ports": [{"name": "master", "port": export.master_port}]}}
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": export.job, "labels": k8s_pod.labels(export)},
           "spec": {"completionMode": "Indexed", "completions": export.nnodes, "parallelism": export.nnodes,
                    "backoffLimit": 0,
                    "template": k8s_pod.template(export, k8s_pod.pod_spec(export, container, subdomain=export.job))}}
    return [k8s_pod.config_map(export, spec), service, job]


def write(export: Export) -> dict[str, str]:
    return k8s_pod.files(export, objects(export))


def how_to_run(export: Export) -> list[str]:
    return [
        f"`kubectl apply -f {export.job}.yaml` on any Kubernetes 1.24 or later (Indexed Jobs); no add-on needed.",
        "**No gang scheduling:** Kubernetes schedules the pods one by one, so some can start and wait (up to "
        f"{export.timeout} s, then fail) while others find no room; on a shared cluster prefer the volcano format.",
        f"Rank: JOB_COMPLETION_INDEX. Master: {export.job}-0.{export.job} (the pod's hostname in the headless Service).",
        "`envctl export --check DIR` checks it offline.",
    ]


FORMAT = Format("k8s-job", "a batch/v1 Indexed Job and a headless Service (no gang scheduling)", write, how_to_run,
                k8s_pod.check)
