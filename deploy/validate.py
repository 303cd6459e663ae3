#!/usr/bin/env python3
"""Validate pgkeep's deployment manifests; run by deploy/validate.sh inside a virtualenv.

1. Renders the OpenShift template as `oc process` would: parameter defaults, generated values,
   `-p NAME=VALUE` overrides, `${PARAM}` substituted inside strings and `${{PARAM}}` replaced by
   the parsed (non-string) value, the template's labels added to every object. Unknown parameter
   references, unused parameters and required parameters without a value are errors.
2. Collects the Kubernetes manifests: the output of `kubectl kustomize` for every kustomization
   under deploy/kubernetes when kubectl is installed, otherwise each file on its own (and then
   checks that every file is listed by a kustomization).
3. Validates every object against the Kubernetes JSON schemas of a pinned version
   (kubernetes-validate, strict: unknown fields are errors). Kinds that are not in those schemas
   (Template, Route, DeploymentConfig, PrometheusRule...) are reported as skipped.
4. Checks what the schemas cannot: the restricted security context on every container, probes,
   resources, one Recreate replica, Services that select the pods and name real ports, volumes
   that exist, CronJob limits, Prometheus annotations, the old pod's environment variables, and
   that every pgkeep.toml in a ConfigMap parses (and, given --pgkeep BIN, that pgkeep accepts it).

Exit status 0 when everything is valid, 1 otherwise (one line per problem).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

try:
    import kubernetes_validate
except ImportError:  # pragma: no cover - validate.sh installs it
    kubernetes_validate = None

HERE = Path(__file__).resolve().parent
OLD_POD_ENV = [
    "DATABASE_SERVICE_NAME",
    "POSTGRESQL_USER",
    "POSTGRESQL_PASSWORD",
    "POSTGRESQL_DATABASE",
    "BACKUP_DIR",
]
PARAM_RE = re.compile(r"\$\{\{?([A-Za-z_][A-Za-z0-9_]*)\}?\}")


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}")


# --- OpenShift template rendering -------------------------------------------------------------


def generate(expr: str) -> str:
    """A value for the `expression` generator: `[classes]{n}` pieces and literal text."""
    out = []
    rng = random.Random(0)  # deterministic: the value only has to match the expression
    for m in re.finditer(r"\[([^\]]+)\]\{(\d+)\}|(.)", expr):
        if m.group(3) is not None:
            out.append(m.group(3))
            continue
        cls, n = m.group(1), int(m.group(2))
        chars = ""
        for a in re.finditer(r"(\\w|\\d|\\a|\\A)|(.)-(.)|(.)", cls):
            if a.group(1):
                chars += {
                    r"\w": string.ascii_letters + string.digits + "_",
                    r"\d": string.digits,
                    r"\a": string.ascii_letters,
                    r"\A": string.punctuation,
                }[a.group(1)]
            elif a.group(2):
                chars += "".join(chr(c) for c in range(ord(a.group(2)), ord(a.group(3)) + 1))
            else:
                chars += a.group(4)
        out.append("".join(rng.choice(chars) for _ in range(n)))
    return "".join(out)


def render_template(path: Path, overrides: dict[str, str], problems: Problems) -> list[dict]:
    where = str(path.relative_to(HERE.parent)) if path.is_relative_to(HERE.parent) else str(path)
    doc = yaml.safe_load(path.read_text())
    if doc.get("kind") != "Template" or doc.get("apiVersion") != "template.openshift.io/v1":
        problems.add(where, "not a template.openshift.io/v1 Template")
        return []
    values: dict[str, str] = {}
    declared = set()
    for p in doc.get("parameters", []):
        name = p.get("name", "")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            problems.add(where, f"parameter name {name!r} is not valid")
            continue
        if name in declared:
            problems.add(where, f"parameter {name} declared twice")
        declared.add(name)
        unknown = set(p) - {"name", "displayName", "description", "value", "generate", "from", "required"}
        if unknown:
            problems.add(where, f"parameter {name}: unknown fields {sorted(unknown)}")
        if name in overrides:
            values[name] = overrides[name]
        elif p.get("value") not in (None, ""):
            values[name] = str(p["value"])
        elif p.get("generate") == "expression":
            values[name] = generate(p.get("from", ""))
        elif p.get("required"):
            problems.add(where, f"required parameter {name} has no value")
            values[name] = ""
        else:
            values[name] = ""
    for name in overrides:
        if name not in declared:
            problems.add(where, f"-p {name}: no such parameter")

    used: set[str] = set()

    def subst(v):
        if isinstance(v, dict):
            return {k: subst(x) for k, x in v.items()}
        if isinstance(v, list):
            return [subst(x) for x in v]
        if not isinstance(v, str):
            return v
        whole = re.fullmatch(r"\$\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}", v)
        if whole:
            name = whole.group(1)
            used.add(name)
            if name not in values:
                problems.add(where, f"reference to unknown parameter {name}")
                return v
            try:
                return json.loads(values[name])
            except json.JSONDecodeError:
                problems.add(where, f"${{{{{name}}}}}: value {values[name]!r} is not JSON")
                return values[name]

        def one(m: re.Match) -> str:
            name = m.group(1)
            used.add(name)
            if name not in values:
                problems.add(where, f"reference to unknown parameter {name}")
                return m.group(0)
            return values[name]

        return PARAM_RE.sub(one, v)

    objects = [subst(o) for o in doc.get("objects", [])]
    for name in sorted(declared - used):
        problems.add(where, f"parameter {name} is declared but never used")
    labels = subst(doc.get("labels", {}) or {})
    for o in objects:
        o.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    return objects


# --- Kubernetes manifests ---------------------------------------------------------------------


def kustomization_roots(base: Path) -> list[Path]:
    return sorted(p.parent for p in base.rglob("kustomization.yaml"))


def kubernetes_objects(base: Path, problems: Problems, use_kubectl: bool) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    roots = kustomization_roots(base)
    # Every manifest file must belong to some kustomization.
    listed: set[Path] = set()
    for root in roots:
        k = yaml.safe_load((root / "kustomization.yaml").read_text()) or {}
        for r in k.get("resources", []):
            p = (root / r).resolve()
            if not p.exists():
                problems.add(str(root / "kustomization.yaml"), f"resource {r} does not exist")
            listed.add(p)
        for gen in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
            for f in gen.get("files", []) + gen.get("envs", []):
                p = (root / f.split("=", 1)[-1]).resolve()
                if not p.exists():
                    problems.add(str(root / "kustomization.yaml"), f"generator file {f} does not exist")
                listed.add(p)
    for f in sorted(base.rglob("*.yaml")):
        if f.name != "kustomization.yaml" and f.resolve() not in listed:
            problems.add(str(f), "not listed in any kustomization.yaml")

    if use_kubectl:
        # Only top-level variants (a base is rendered through the variants that use it).
        bases = set()
        for root in roots:
            k = yaml.safe_load((root / "kustomization.yaml").read_text()) or {}
            for r in k.get("resources", []):
                if (root / r).is_dir():
                    bases.add((root / r).resolve())
        for root in roots:
            if root.resolve() in bases:
                continue
            res = subprocess.run(
                ["kubectl", "kustomize", str(root)], capture_output=True, text=True
            )
            name = f"kustomize {root.relative_to(HERE.parent)}"
            if res.returncode != 0:
                problems.add(name, res.stderr.strip().replace("\n", " "))
                continue
            for o in yaml.safe_load_all(res.stdout):
                if o:
                    out.append((name, o))
    else:
        for f in sorted(base.rglob("*.yaml")):
            if f.name == "kustomization.yaml":
                continue
            for o in yaml.safe_load_all(f.read_text()):
                if o:
                    out.append((str(f.relative_to(HERE.parent)), o))
        # What the generators would make (names without hash suffix, as configured).
        for root in roots:
            k = yaml.safe_load((root / "kustomization.yaml").read_text()) or {}
            name = str((root / "kustomization.yaml").relative_to(HERE.parent))
            for gen in k.get("configMapGenerator", []):
                data = {}
                for f in gen.get("files", []):
                    key, _, file = f.rpartition("=")
                    data[key or Path(file).name] = (root / file).read_text()
                out.append((name, {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": gen["name"]}, "data": data}))
            for gen in k.get("secretGenerator", []):
                data = {}
                for f in gen.get("envs", []):
                    for line in (root / f).read_text().splitlines():
                        if line.strip() and not line.startswith("#"):
                            key, _, val = line.partition("=")
                            data[key.strip()] = val
                out.append((name, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                   "metadata": {"name": gen["name"]}, "stringData": data}))
    return out


# --- checks the schemas cannot make -----------------------------------------------------------


def kn(o: dict) -> str:
    return f"{o.get('kind')}/{o.get('metadata', {}).get('name')}"


def check_container(where: str, c: dict, pod_sc: dict, problems: Problems, long_running: bool) -> None:
    sc = c.get("securityContext") or {}
    name = f"{where} container {c.get('name')}"
    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
        problems.add(name, "runAsNonRoot is not set")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.add(name, "allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.add(name, "readOnlyRootFilesystem must be true")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problems.add(name, "capabilities must drop ALL")
    if (sc.get("capabilities") or {}).get("add"):
        problems.add(name, "must not add capabilities")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        problems.add(name, "seccompProfile must be RuntimeDefault")
    if sc.get("runAsUser") == 0 or pod_sc.get("runAsUser") == 0:
        problems.add(name, "runs as UID 0")
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(part) or {}):
                problems.add(name, f"resources.{part}.{r} is missing")
    if long_running:
        if not c.get("livenessProbe") or not c.get("readinessProbe"):
            problems.add(name, "liveness and readiness probes are required")
    mounts = {m.get("mountPath") for m in c.get("volumeMounts") or []}
    args = c.get("args") or []
    if args[:1] in (["run"], ["backup"], ["prune"]):
        if "/tmp" not in mounts:
            problems.add(name, "needs a writable /tmp (emptyDir) under a read-only root")
        env = {e.get("name"): e for e in c.get("env") or []}
        for v in OLD_POD_ENV:
            if v not in env:
                problems.add(name, f"environment variable {v} (the old pod's) is missing")
        bdir = (env.get("BACKUP_DIR") or {}).get("value")
        if bdir and bdir not in mounts:
            problems.add(name, f"BACKUP_DIR {bdir} is not a mounted volume")
        if "PGKEEP_CONFIG" in env and not any(
            (env["PGKEEP_CONFIG"].get("value") or "").startswith(m.rstrip("/") + "/") for m in mounts if m
        ):
            problems.add(name, "PGKEEP_CONFIG is not inside a mounted volume")
        for e in env.values():
            if re.search("PASSWORD|TOKEN", e.get("name", "")) and "value" in e:
                problems.add(name, f"{e['name']} is a literal value; take it from a Secret")
    if args[:1] == ["run"]:
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            got = ((c.get(probe) or {}).get("httpGet") or {}).get("path")
            if got != path:
                problems.add(name, f"{probe} must be an HTTP GET of {path} (is {got})")


def check_pod(where: str, spec: dict, problems: Problems, long_running: bool) -> None:
    pod_sc = spec.get("securityContext") or {}
    if pod_sc.get("runAsNonRoot") is not True:
        problems.add(where, "pod securityContext.runAsNonRoot must be true")
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.add(where, "pod seccompProfile must be RuntimeDefault")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.add(where, "uses host namespaces")
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        check_container(where, c, pod_sc, problems, long_running and c in spec.get("containers", []))
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                problems.add(where, f"container {c.get('name')} mounts unknown volume {m.get('name')}")


def check_objects(where: str, objs: list[dict], problems: Problems) -> None:
    by_kind: dict[str, list[dict]] = {}
    for o in objs:
        by_kind.setdefault(o.get("kind"), []).append(o)
    names = {(o.get("kind"), o.get("metadata", {}).get("name")) for o in objs}
    for k, name in names:
        if sum(1 for o in objs if (o.get("kind"), o.get("metadata", {}).get("name")) == (k, name)) > 1:
            problems.add(where, f"{k}/{name} defined twice")
    pods: list[tuple[dict, dict]] = []  # (pod template metadata, spec)
    for d in by_kind.get("Deployment", []):
        w = f"{where} {kn(d)}"
        spec = d.get("spec", {})
        if spec.get("replicas") != 1:
            problems.add(w, "must run exactly 1 replica")
        if (spec.get("strategy") or {}).get("type") != "Recreate":
            problems.add(w, "strategy must be Recreate (one writer on the backup volume)")
        tmpl = spec.get("template", {})
        ann = tmpl.get("metadata", {}).get("annotations") or {}
        for a in ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path"):
            if a not in ann:
                problems.add(w, f"pod annotation {a} is missing")
        check_pod(w, tmpl.get("spec", {}), problems, long_running=True)
        pods.append((tmpl.get("metadata", {}), tmpl.get("spec", {})))
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        labels = tmpl.get("metadata", {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in sel.items()):
            problems.add(w, "selector does not match the pod labels")
    for cj in by_kind.get("CronJob", []):
        w = f"{where} {kn(cj)}"
        spec = cj.get("spec", {})
        if spec.get("concurrencyPolicy") != "Forbid":
            problems.add(w, "concurrencyPolicy must be Forbid")
        for f in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            if f not in spec:
                problems.add(w, f"{f} is missing")
        job = (spec.get("jobTemplate") or {}).get("spec", {})
        if "activeDeadlineSeconds" not in job:
            problems.add(w, "jobTemplate activeDeadlineSeconds is missing")
        pod = job.get("template", {}).get("spec", {})
        check_pod(w, pod, problems, long_running=False)
        cmds = [(c.get("args") or []) for c in (pod.get("initContainers") or []) + (pod.get("containers") or [])]
        if cmds != [["backup"], ["prune", "--apply"]]:
            problems.add(w, f"must run `backup` then `prune --apply` (runs {cmds})")
        pods.append((job.get("template", {}).get("metadata", {}), pod))
    for s in by_kind.get("Service", []):
        w = f"{where} {kn(s)}"
        sel = (s.get("spec") or {}).get("selector") or {}
        matching = [
            spec for meta, spec in pods if sel and all((meta.get("labels") or {}).get(k) == v for k, v in sel.items())
        ]
        if not matching:
            problems.add(w, f"selector {sel} matches no pod template")
        ports = {
            p.get("name")
            for spec in matching
            for c in spec.get("containers") or []
            for p in c.get("ports") or []
        } | {
            p.get("containerPort")
            for spec in matching
            for c in spec.get("containers") or []
            for p in c.get("ports") or []
        }
        for p in (s.get("spec") or {}).get("ports") or []:
            if p.get("targetPort") not in ports:
                problems.add(w, f"targetPort {p.get('targetPort')} is no container port")
    known = {(o.get("kind"), o.get("metadata", {}).get("name")) for o in objs}
    for meta, spec in pods:
        for v in spec.get("volumes") or []:
            for kind, ref in (
                ("ConfigMap", (v.get("configMap") or {}).get("name")),
                ("PersistentVolumeClaim", (v.get("persistentVolumeClaim") or {}).get("claimName")),
            ):
                if ref and (kind, ref) not in known:
                    problems.add(where, f"volume {v.get('name')} refers to missing {kind}/{ref}")
        sa = spec.get("serviceAccountName")
        if sa and ("ServiceAccount", sa) not in known:
            problems.add(where, f"serviceAccountName {sa} is not defined")
    if not any(o.get("kind") == "NetworkPolicy" for o in objs):
        problems.add(where, "no NetworkPolicy lets pgkeep reach the database")


def check_configs(where: str, objs: list[dict], pgkeep: str | None, problems: Problems) -> int:
    checked = 0
    for o in objs:
        if o.get("kind") != "ConfigMap":
            continue
        for key, text in (o.get("data") or {}).items():
            if not key.endswith(".toml"):
                continue
            w = f"{where} {kn(o)} {key}"
            try:
                tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                problems.add(w, f"not valid TOML: {e}")
                continue
            checked += 1
            if pgkeep:
                with tempfile.TemporaryDirectory() as d:
                    f = Path(d) / key
                    f.write_text(text)
                    res = subprocess.run(
                        [pgkeep, "--config", str(f), "config", "show"],
                        env={"PATH": os.environ.get("PATH", "")},
                        capture_output=True,
                        text=True,
                    )
                    if res.returncode != 0:
                        problems.add(w, f"pgkeep refuses it: {res.stderr.strip()}")
    return checked


def pod_specs(objs: list[dict]) -> list[dict]:
    out = []
    for o in objs:
        if o.get("kind") == "Deployment":
            out.append(o["spec"]["template"]["spec"])
        elif o.get("kind") == "CronJob":
            out.append(o["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return out


def check_container_env(where: str, objs: list[dict], pgkeep: str, problems: Problems) -> int:
    """Run `pgkeep config show` with each pgkeep container's environment and mounted config.

    Literal values are used as they are; values from Secrets become placeholders; ConfigMap
    volumes are written to a temporary directory that stands in for their mount path.
    """
    maps = {o["metadata"]["name"]: o.get("data") or {} for o in objs if o.get("kind") == "ConfigMap"}
    checked = 0
    for spec in pod_specs(objs):
        volumes = {v.get("name"): v for v in spec.get("volumes") or []}
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            if (c.get("args") or [""])[0] == "maintenance":
                checked += 1
                check_maintenance(f"{where} container {c.get('name')}", c, pgkeep, problems)
                continue
            if (c.get("args") or [""])[0] not in ("run", "backup", "prune"):
                continue
            with tempfile.TemporaryDirectory() as d:
                mounts = {}
                for m in c.get("volumeMounts") or []:
                    cm = (volumes.get(m.get("name")) or {}).get("configMap")
                    if cm:
                        target = Path(d) / m["name"]
                        target.mkdir()
                        for k, text in maps.get(cm.get("name"), {}).items():
                            (target / k).write_text(text)
                        mounts[m["mountPath"].rstrip("/")] = str(target)
                env = {"PATH": os.environ.get("PATH", "")}
                for e in c.get("env") or []:
                    if "value" in e:
                        v = str(e["value"])
                        for mp, real in mounts.items():
                            if v.startswith(mp + "/"):
                                v = real + v[len(mp):]
                        env[e["name"]] = v
                    elif re.search("PASSWORD|TOKEN|SECRET", e["name"]):
                        env[e["name"]] = "s3cret-placeholder"
                    else:
                        env[e["name"]] = "from-secret"
                res = subprocess.run(
                    [pgkeep, "config", "show"], env=env, capture_output=True, text=True
                )
                checked += 1
                if res.returncode != 0:
                    problems.add(
                        f"{where} container {c.get('name')}",
                        f"pgkeep refuses its configuration: {res.stderr.strip()}",
                    )
                elif "s3cret-placeholder" in res.stdout + res.stderr:
                    problems.add(f"{where} container {c.get('name')}", "config show printed a secret")
    return checked


def check_maintenance(where: str, c: dict, pgkeep: str, problems: Problems) -> None:
    """Start the maintenance container's command with its environment (on 127.0.0.1, port 0)
    and check that it answers 503 with the configured Retry-After and message, and that the
    container port is the one it listens on."""
    import signal
    import socket
    import time

    env = {"PATH": os.environ.get("PATH", "")}
    for e in c.get("env") or []:
        if "value" in e:
            env[e["name"]] = str(e["value"])
    listen = env.get("PGKEEP_MAINTENANCE_LISTEN", "0.0.0.0:8081")
    ports = [p.get("containerPort") for p in c.get("ports") or []]
    if int(listen.rsplit(":", 1)[1]) not in ports:
        problems.add(where, f"listens on {listen} but declares container ports {ports}")
    env["PGKEEP_MAINTENANCE_LISTEN"] = "127.0.0.1:0"
    addr = None
    proc = subprocess.Popen(
        [pgkeep] + list(c.get("args") or []),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        seen = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line.strip())
            m = re.search(r"addr=(\S+)", line)
            if "maintenance page listening" in line and m:
                addr = m.group(1)
                break
        if addr is None:
            proc.kill()
            code = proc.wait()
            problems.add(where, f"`pgkeep maintenance` did not start (exit {code}): {' '.join(seen)[:300]}")
            return
        host, port = addr.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        head, _, body = raw.decode("utf-8", "replace").partition("\r\n\r\n")
        status = head.split(" ", 2)[1] if " " in head else "?"
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (h.partition(":") for h in head.split("\r\n")[1:])
        }
        if status != "503":
            problems.add(where, f"answers {status}, not 503")
        want = env.get("PGKEEP_MAINTENANCE_RETRY_AFTER")
        if want and headers.get("retry-after") != want:
            problems.add(where, f"Retry-After is {headers.get('retry-after')}, configured {want}")
        msg = env.get("PGKEEP_MAINTENANCE_MESSAGE")
        if msg and msg.split()[0] not in body:
            problems.add(where, "the configured message is not on the page")
    finally:
        if proc.poll() is not None and addr is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if code != 0:
            problems.add(where, f"`pgkeep maintenance` exited {code} on SIGTERM")


def check_monitoring(path: Path, services: list[dict], problems: Problems) -> int:
    """ServiceMonitor and PrometheusRule objects (Prometheus Operator CRDs, not in the schemas):
    the ServiceMonitor must select pgkeep's Service and name its port; every rule needs alert
    (or record) and expr, alerts a summary and a severity, and every expr must parse as PromQL."""
    try:
        import promql_parser
    except ImportError:
        promql_parser = None
        problems.add(str(path), "promql-parser is not installed: expressions not checked")
    n = 0
    for o in yaml.safe_load_all(path.read_text()):
        if not o:
            continue
        w = f"{path.name} {kn(o)}"
        print(f"validate: skipped (Prometheus Operator kind, not in the Kubernetes schemas; "
              f"checked structurally): {w}")
        if o.get("apiVersion") != "monitoring.coreos.com/v1":
            problems.add(w, "expected apiVersion monitoring.coreos.com/v1")
            continue
        if o.get("kind") == "ServiceMonitor":
            spec = o.get("spec") or {}
            sel = (spec.get("selector") or {}).get("matchLabels") or {}
            hits = [
                svc for svc in services
                if sel and all((svc.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in sel.items())
            ]
            if not hits:
                problems.add(w, f"selector {sel} matches no Service of the template")
            ports = {p.get("name") for svc in hits for p in (svc.get("spec") or {}).get("ports") or []}
            for ep in spec.get("endpoints") or []:
                if ep.get("port") not in ports:
                    problems.add(w, f"endpoint port {ep.get('port')} is not a port of the selected Service")
            continue
        if o.get("kind") != "PrometheusRule":
            problems.add(w, "expected a ServiceMonitor or a PrometheusRule")
            continue
        for g in (o.get("spec") or {}).get("groups") or []:
            for r in g.get("rules") or []:
                n += 1
                w = f"{path.name} {g.get('name')}/{r.get('alert') or r.get('record')}"
                if not (r.get("alert") or r.get("record")) or not str(r.get("expr", "")).strip():
                    problems.add(w, "a rule needs alert (or record) and expr")
                if r.get("alert") and not (r.get("annotations") or {}).get("summary"):
                    problems.add(w, "an alert needs a summary annotation")
                if r.get("alert") and (r.get("labels") or {}).get("severity") not in ("info", "warning", "critical"):
                    problems.add(w, "severity label must be info, warning or critical")
                if promql_parser is not None:
                    try:
                        promql_parser.parse(str(r.get("expr", "")))
                    except ValueError as e:
                        problems.add(w, f"expr is not valid PromQL: {e}")
    return n


# --- self-test: the checks above must catch broken manifests ---------------------------------


def self_test(version: str) -> list[str]:
    """Break a rendered copy of the template in known ways; each must be reported."""
    failures = []
    base_problems = Problems()
    good = render_template(HERE / "openshift" / "pgkeep.yaml", {}, base_problems)
    if base_problems.items:
        return [f"the template itself has problems: {base_problems.items}"]

    def deployment(objs):
        return next(o for o in objs if o["kind"] == "Deployment")

    def schema_problems(objs):
        out = []
        for o in objs:
            try:
                kubernetes_validate.validate(o, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                out.append(e.message)
            except kubernetes_validate.SchemaNotFoundError:
                pass
        return out

    def policy_problems(objs):
        p = Problems()
        check_objects("self-test", objs, p)
        return p.items

    cases = []

    def case(name, mutate, finder):
        objs = yaml.safe_load(yaml.safe_dump(good))
        mutate(objs)
        cases.append((name, finder(objs)))

    case("misspelled field", lambda o: deployment(o)["spec"].update(replica=1), schema_problems)
    case("port as text", lambda o: deployment(o)["spec"]["template"]["spec"]["containers"][0]["ports"][0]
         .update(containerPort="http"), schema_problems)
    case("writable root filesystem", lambda o: deployment(o)["spec"]["template"]["spec"]["containers"][0]
         ["securityContext"].update(readOnlyRootFilesystem=False), policy_problems)
    case("rolling update", lambda o: deployment(o)["spec"].update(strategy={"type": "RollingUpdate"}),
         policy_problems)
    case("missing old-pod variable", lambda o: deployment(o)["spec"]["template"]["spec"]["containers"][0]
         .update(env=[e for e in deployment(o)["spec"]["template"]["spec"]["containers"][0]["env"]
                      if e["name"] != "POSTGRESQL_DATABASE"]), policy_problems)
    case("service to a missing port", lambda o: next(x for x in o if x["kind"] == "Service")["spec"]["ports"][0]
         .update(targetPort="nope"), policy_problems)
    for name, found in cases:
        if not found:
            failures.append(f"self-test: {name} was not detected")

    with tempfile.TemporaryDirectory() as d:
        t = Path(d) / "t.yaml"
        t.write_text(
            "apiVersion: template.openshift.io/v1\nkind: Template\nmetadata: {name: t}\n"
            "parameters:\n- {name: A, value: x}\n- {name: B, required: true}\n- {name: C, value: '80'}\n"
            "objects:\n- {kind: ConfigMap, apiVersion: v1, metadata: {name: '${A}-${TYPO}'},"
            " data: {port: '${{C}}', x: 'a${A}b'}}\n"
        )
        p = Problems()
        objs = render_template(t, {}, p)
        text = " ".join(p.items)
        for want in ("unknown parameter TYPO", "required parameter B", "parameter B is declared but never used"):
            if want not in text:
                failures.append(f"self-test: template check missed: {want} (got {p.items})")
        if objs and (objs[0]["data"]["port"] != 80 or objs[0]["data"]["x"] != "axb"):
            failures.append(f"self-test: substitution wrong: {objs[0]['data']}")
    return failures


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kubernetes-version", default="1.31.0")
    ap.add_argument("--pgkeep", help="pgkeep binary: check that it accepts every pgkeep.toml")
    ap.add_argument("--no-kubectl", action="store_true", help="validate files one by one")
    ap.add_argument("--render", action="store_true", help="print the rendered template and exit")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()

    problems = Problems()
    overrides = {}
    for p in args.param:
        k, sep, v = p.partition("=")
        if not sep:
            print(f"validate: -p {p}: expected NAME=VALUE", file=sys.stderr)
            return 2
        overrides[k] = v

    template = HERE / "openshift" / "pgkeep.yaml"
    rendered = render_template(template, overrides, problems)
    if args.render:
        yaml.safe_dump_all(rendered, sys.stdout, sort_keys=False)
        return 0 if not problems.items else 1

    use_kubectl = not args.no_kubectl and shutil.which("kubectl") is not None
    groups: dict[str, list[dict]] = {"openshift/pgkeep.yaml": rendered}
    for where, o in kubernetes_objects(HERE / "kubernetes", problems, use_kubectl):
        groups.setdefault(where, []).append(o)
    if not use_kubectl:
        # Without kustomize, cross-object checks run over all Kubernetes files together.
        merged = [o for w, objs in groups.items() if w != "openshift/pgkeep.yaml" for o in objs]
        groups = {"openshift/pgkeep.yaml": rendered, "kubernetes (all files)": merged}

    if kubernetes_validate is None:
        problems.add("validate", "the kubernetes-validate package is not installed")
        valid, skipped = 0, []
    else:
        for f in self_test(args.kubernetes_version):
            problems.add("validate", f)
        valid, skipped = 0, []
        for where, objs in groups.items():
            for o in objs:
                try:
                    kubernetes_validate.validate(o, args.kubernetes_version, strict=True)
                    valid += 1
                except kubernetes_validate.SchemaNotFoundError:
                    skipped.append(f"{where} {kn(o)} ({o.get('apiVersion')})")
                except kubernetes_validate.ValidationError as e:
                    path = ".".join(str(p) for p in e.path)
                    problems.add(f"{where} {kn(o)}", f"{path}: {e.message}")
                except kubernetes_validate.InvalidSchemaError as e:
                    problems.add(f"{where} {kn(o)}", f"invalid schema: {e}")

    configs = envs = 0
    for where, objs in groups.items():
        check_objects(where, objs, problems)
        configs += check_configs(where, objs, args.pgkeep, problems)
        if args.pgkeep:
            envs += check_container_env(where, objs, args.pgkeep, problems)
    rules = 0
    services = [o for o in rendered if o.get("kind") == "Service"]
    for f in sorted((HERE / "openshift").glob("*.yaml")):
        if f.name != "pgkeep.yaml":
            rules += check_monitoring(f, services, problems)

    total = sum(len(v) for v in groups.values())
    print(
        f"validate: Kubernetes {args.kubernetes_version} schemas (strict), "
        f"{'kustomize via kubectl' if use_kubectl else 'files one by one (no kubectl)'}"
    )
    for where, objs in groups.items():
        print(f"  {where}: {', '.join(kn(o) for o in objs)}")
    print(f"validate: {valid} of {total} objects valid against the schemas")
    for s in skipped:
        print(f"validate: skipped (kind not in the Kubernetes schemas): {s}")
    print(
        "validate: skipped (OpenShift-only, not in the Kubernetes schemas): the Template itself "
        "(its parameters were checked while rendering)"
    )
    print(
        f"validate: {configs} pgkeep.toml checked"
        + (f" with {args.pgkeep}" if args.pgkeep else " (TOML syntax only: no --pgkeep)")
        + f"; {rules} PrometheusRule rules checked (structure, PromQL parsed); ServiceMonitor checked against the template's Service"
    )
    if args.pgkeep:
        print(f"validate: {envs} container environments accepted by pgkeep (`config show`; the maintenance page started and answered)")
    for p in problems.items:
        print(f"INVALID {p}")
    if problems.items:
        print(f"validate: {len(problems.items)} problem(s)")
        return 1
    print("validate: all manifests valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
