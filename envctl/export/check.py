"""`envctl export --check DIR [--crd FILE]...`: validate a Kubernetes export offline.

- Built-in kinds (v1, batch/v1, ...) with kubernetes-validate in strict mode (unknown fields are
  errors) at the pinned KUBERNETES_VERSION; it ships the schemas, so nothing is downloaded.
- Custom kinds against their CRD's `spec.versions[*].schema.openAPIV3Schema` (files the user
  names: `kubectl get crd jobs.batch.volcano.sh -o yaml`), with jsonschema. A custom kind
  without its CRD is a problem, never a silent pass.
- Every pod template, wherever it sits (Volcano tasks, Kubeflow and MindCluster replica specs,
  a Job's template), strictly as a `v1 PodTemplate`: a CRD schema is structural but not strict
  (the API server prunes unknown fields instead of refusing them), so a typo under a CRD's
  `spec` passes it (research scale-out.md §1.8).

A problem names the file, the object (Kind/name, document number) and the field's path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

KUBERNETES_VERSION = "1.33"  # the schemas kubernetes-validate checks built-in kinds against
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader: CRDs run to 600 kB


@dataclass(frozen=True)
class Problem:
    file: str
    obj: str  # Kind/name (document N)
    field: str  # dotted path, [i] for list items; "-" for the whole object
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.obj}: {self.field}: {self.message}"


def _path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "-"


@dataclass(frozen=True)
class Crd:
    file: str
    schema: dict  # the version's openAPIV3Schema
    served: bool = True  # the API server refuses objects of a version with served: false


def load_crds(files: list[Path]) -> tuple[dict[tuple[str, str], Crd], list[Problem]]:
    """CRDs by (apiVersion, kind), e.g. ("batch.volcano.sh/v1alpha1", "Job")."""
    found, problems = {}, []
    for path in files:
        try:
            documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_LOADER))
        except (OSError, yaml.YAMLError) as exc:
            problems.append(Problem(str(path), "-", "-", f"cannot read the CRD file: {exc}"))
            continue
        # `kubectl get crd A B -o yaml` (or with no name) prints one `kind: List` holding them.
        items = [i for d in documents if isinstance(d, dict) and str(d.get("kind", "")).endswith("List")
                 for i in (d.get("items") or [])]
        crds = [d for d in documents + items if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]
        if not crds:
            problems.append(Problem(str(path), "-", "-", "holds no CustomResourceDefinition"))
        for document in crds:
            spec = document.get("spec") or {}
            group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
            for version in spec.get("versions") or []:
                schema = ((version.get("schema") or {}).get("openAPIV3Schema"))
                if group and kind and schema:
                    found[(f"{group}/{version.get('name')}", kind)] = Crd(str(path), schema, version.get("served", True) is not False)
    return found, problems


def pod_templates(obj: dict) -> list[tuple[list, dict]]:
    """(path, template) of every pod template in an object: any mapping under a key `template`
    that holds a `spec` with `containers`."""
    out = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "template" and isinstance(value, dict) and isinstance(value.get("spec"), dict) \
                        and "containers" in value["spec"]:
                    out.append((path + [key], value))
                walk(value, path + [key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, path + [index])

    walk(obj, [])
    return out


def _builtin(obj: dict) -> bool:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def _strict(file: str, label: str, obj: dict, prefix: list) -> list[Problem]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [Problem(file, label, _path(prefix) if prefix else "-",
                        f"Kubernetes {KUBERNETES_VERSION} has no kind {obj.get('kind')} in {obj.get('apiVersion')}")]
    except kubernetes_validate.ValidationError as error:
        return [Problem(file, label, _path(prefix + list(error.path)), error.message)]
    return []


def _unknown_fields(node, schema: dict, path: list, skip: list) -> list[list]:
    """Paths of the fields of `node` its structural schema does not declare, as the API server's
    strict field validation finds them (pruning would drop them): under an object schema with
    `properties`, neither `additionalProperties` nor `x-kubernetes-preserve-unknown-fields`.
    Pod templates (`skip`) are checked strictly as PodTemplates instead; `metadata` as ObjectMeta."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields") or path in skip:
        return []
    found = []
    if isinstance(node, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in node.items():
            if properties is not None and key in properties:
                if not (path == [] and key == "metadata"):
                    found += _unknown_fields(value, properties[key], path + [key], skip)
            elif isinstance(extra, dict):
                found += _unknown_fields(value, extra, path + [key], skip)
            elif properties is not None and extra is None:
                found.append(path + [key])
    elif isinstance(node, list) and isinstance(schema.get("items"), dict):
        for index, value in enumerate(node):
            found += _unknown_fields(value, schema["items"], path + [index], skip)
    return found


def check_object(file: str, index: int, obj, crds: dict) -> list[Problem]:
    if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
        return [Problem(file, f"document {index}", "-", "not a Kubernetes object (no apiVersion and kind)")]
    label = f"{obj['kind']}/{(obj.get('metadata') or {}).get('name', '?')} (document {index})"
    problems = []
    if _builtin(obj):
        problems += _strict(file, label, obj, [])
    else:
        crd = crds.get((obj["apiVersion"], obj["kind"]))
        if crd is None:
            problems.append(Problem(file, label, "-", f"no CRD for {obj['kind']} in {obj['apiVersion']}: pass its "
                                                      "CustomResourceDefinition with --crd FILE"))
        elif not crd.served:
            problems.append(Problem(file, label, "apiVersion", f"the CRD in {crd.file} does not serve {obj['apiVersion']} "
                                                               "(served: false): the API server refuses it"))
        else:
            import jsonschema

            # OpenAPI v3 schemas are JSON Schema draft 4/5 with extensions; Draft 7 reads every
            # keyword CRD schemas use (type, properties, required, enum, format, items, ...).
            validator = jsonschema.Draft7Validator(crd.schema)
            for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path))):
                problems.append(Problem(file, label, _path(list(error.path)), error.message))
            templates = [path for path, _template in pod_templates(obj)]
            for parts in _unknown_fields(obj, crd.schema, [], templates):
                problems.append(Problem(file, label, _path(parts), "unknown field: the API server's strict field "
                                        "validation (kubectl apply's default since Kubernetes 1.27) refuses it"))
            meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata") or {}}
            problems += _strict(file, label, meta, [])  # a custom object's metadata is an ObjectMeta
    for path, template in pod_templates(obj):
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "pod-template"}, "template": template}
        for problem in _strict(file, label, wrapped, []):
            field = problem.field.removeprefix("template")  # the wrapper's own key
            problems.append(Problem(file, label, _path(path) + field, f"(as a PodTemplate) {problem.message}"))
    return problems


def check_directory(directory: Path, crd_files: list[Path]) -> list[Problem]:
    """Every problem of every *.yaml / *.yml file in `directory`."""
    crds, problems = load_crds(crd_files)
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    if not files:
        problems.append(Problem(str(directory), "-", "-", "no .yaml file to check"))
    for path in files:
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark else "-"
            problems.append(Problem(path.name, "-", where, f"not YAML: {getattr(exc, 'problem', exc)}"))
            continue
        for index, obj in enumerate(d for d in documents if d is not None):
            problems += check_object(path.name, index, obj, crds)
    return problems
