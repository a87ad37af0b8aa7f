"""What every node must have that a cluster engine cannot express: listed in the export's README,
never dropped silently.

Kubernetes has no ulimit field (a container gets its runtime's defaults: containerd's
LimitMEMLOCK, dockerd's --default-ulimit), no way to name a user by name (runAsUser is numeric),
and runs only images already on the node when nothing can be pulled (imagePullPolicy: Never).
What depends on the format (how a pulled image reaches the nodes, where container.pass_env
values come from) is added by envctl.export.readme from envctl.export.pulled and .passed.
"""

from __future__ import annotations

from envctl.manifest import docker_values


def prerequisites(export, plan, loaded) -> tuple[str, ...]:
    """The node prerequisites of an Export (envctl.export.model), one sentence each."""
    out = []
    image = export.image
    importing = (f"the image {image.ref} on every node's container runtime, under that name (imagePullPolicy: "
                 "Never): write it with `envctl save` here, then on each node `ctr -n k8s.io images import FILE` "
                 "(containerd; gunzip a .tar.gz first) or `docker load -i FILE`")
    if image.tarball:
        importing += f"; the manifest's tarball comes from {image.tarball}"
    if image.pulled is None:  # a pulled image: each format says how its nodes pull it (envctl.export.pulled)
        out.append(importing)
    if plan.setup and not image.baked:
        names = ", ".join(step.name for step in plan.setup)
        out.append(f"the setup steps inside the image ({names}): this export names {image.ref}, which does not hold "
                   f"them; run `envctl build {_reference(export)}` and `envctl save {_reference(export)} -o FILE`, and "
                   "export again with --image set to the baked reference `envctl build` printed")
    for name, value in sorted(plan.container.ulimits.items()):
        soft, hard = docker_values.ulimit_limits(value)
        out.append(f"ulimit {name} of at least {_limit(soft)} (soft) / {_limit(hard)} (hard) for containers: Kubernetes "
                   f"has no ulimit field; set it in the runtime's defaults (containerd's systemd unit Limit"
                   f"{name.upper()}=, dockerd --default-ulimit {name}={_limit(soft)}:{_limit(hard)})")
    if export.runtime:
        out.append(f"the OCI runtime '{export.runtime}' as the nodes' container runtime (the manifest asks for it; a "
                   "RuntimeClass, if the cluster has one for it, can be added to the pod template)")
    if export.user and not export.user.split(":")[0].isdigit():
        out.append(f"the user {export.user} in the image: Kubernetes takes numeric IDs only (runAsUser), so the "
                   "export leaves the user to the image")
    if export.resources:
        plugin = {"huawei.com/Ascend910": "MindCluster's ascend-device-plugin",
                  "cambricon.com/mlu": "cambricon-k8s-device-plugin", "nvidia.com/gpu": "NVIDIA's device plugin"}
        for resource, count in export.resources.items():
            out.append(f"{plugin.get(resource, 'a device plugin')} advertising {resource} ({count} per node)")
    drivers = [p.source for p in export.host_paths if p.what == "driver"]
    if drivers:
        out.append("the driver's host paths the containers mount, where the vendor's install puts them: "
                   + ", ".join(drivers))
    fetched = [a.name for a in plan.artifacts if a.mode == "ro" and a.host_path]
    if fetched and not export.claim:
        out.append(f"the artifacts ({', '.join(fetched)}) in envctl's cache under {export.data_dir} on every node: "
                   f"`envctl fetch {_reference(export)} --hosts NODES` fills it (a node reached as another user than "
                   "root keeps it under that user's ~/.local/share/envctl: export with --data-dir)")
    elif fetched:
        out.append(f"the PersistentVolumeClaim {export.claim}, ReadOnlyMany or ReadWriteMany, holding envctl's "
                   f"directory layout (cache/, workspaces/) with the artifacts ({', '.join(fetched)}) in it")
    copies = [a.name for a in plan.artifacts if a.mode == "rw"]
    if copies:
        out.append(f"the writable copies of {', '.join(copies)} in the workspace (`envctl up {_reference(export)} "
                   "--hosts NODES` makes them)")
    if export.extra.get("secret_env") and not export.passed:  # with pass_env: envctl.export.passed names them all
        keys = ', '.join(export.extra['secret_env'])
        # Kubernetes formats read them with secretKeyRef; slurm and shell pass `-e NAME` to docker,
        # which takes the value from the environment sbatch or the node script runs in.
        out.append(f"the Secret {export.job}-secrets with the keys {keys} (Kubernetes), or {keys} exported in the "
                   "environment sbatch or the node scripts run in (slurm, shell): their values are secrets, so the "
                   "export reads them from there instead of writing them")
    for path in export.host_paths:
        if path.what == "manifest mount":
            out.append(f"{path.source} on every node (the manifest mounts it at {path.target})")
    return tuple(out)


def _limit(value: int) -> str:
    return "unlimited" if value == -1 else str(value)


def _reference(export) -> str:
    return export.reference
