"""Protobuf field tables of the workload kinds ``kubectl create deployment|pdb`` sends (apps/v1
Deployment with its PodTemplateSpec, policy/v1 PodDisruptionBudget), for apiserver_protobuf's
reader. (batch/v1 Job and CronJob are not served by the API server double at all.)

Field numbers, JSON names and kinds from kubernetes/api apps/v1, policy/v1, core/v1 types.go and
kubernetes/apimachinery pkg/apis/meta/v1/types.go (the ``protobuf:"..."`` and ``json:"..."``
tags, the same numbers as their generated.proto; "?" where the Go field is a pointer or its JSON
has no omitempty). Messages kubectl create does not send (probes, volumes, affinity, security
contexts, conditions, ...) are ``gap:`` kinds: a body carrying one is the double's 500, not a
wrong object."""

from __future__ import annotations

try:
    from .apiserver_protobuf import LOCAL_OBJECT_REFERENCE, OBJECT_META, Table
except ImportError:  # run from the zipapp (top-level modules)
    from apiserver_protobuf import (  # type: ignore[no-redef]
        LOCAL_OBJECT_REFERENCE,
        OBJECT_META,
        Table,
    )

LABEL_SELECTOR_REQUIREMENT: Table = (
    "LabelSelectorRequirement",
    {
        1: ("key", "str?"),
        2: ("operator", "str?"),
        3: ("values", ("list", "str")),
    },
)
LABEL_SELECTOR: Table = (
    "LabelSelector",
    {
        1: ("matchLabels", ("map", "str")),
        2: ("matchExpressions", ("list", LABEL_SELECTOR_REQUIREMENT)),
    },
)
CONTAINER_PORT: Table = (
    "ContainerPort",
    {
        1: ("name", "str"),
        2: ("hostPort", "int"),
        3: ("containerPort", "int?"),
        4: ("protocol", "str"),
        5: ("hostIP", "str"),
    },
)
ENV_VAR: Table = (
    "EnvVar",
    {
        1: ("name", "str?"),
        2: ("value", "str"),
        3: ("valueFrom", "gap:EnvVarSource"),
    },
)
RESOURCE_REQUIREMENTS: Table = (
    "ResourceRequirements",
    {
        1: ("limits", ("map", "quantity")),
        2: ("requests", ("map", "quantity")),
        3: ("claims", ("list", "gap:ResourceClaim")),
    },
)
CONTAINER: Table = (
    "Container",
    {
        1: ("name", "str?"),
        2: ("image", "str"),
        3: ("command", ("list", "str")),
        4: ("args", ("list", "str")),
        5: ("workingDir", "str"),
        6: ("ports", ("list", CONTAINER_PORT)),
        19: ("envFrom", ("list", "gap:EnvFromSource")),
        7: ("env", ("list", ENV_VAR)),
        8: ("resources", RESOURCE_REQUIREMENTS),
        23: ("resizePolicy", ("list", "gap:ContainerResizePolicy")),
        24: ("restartPolicy", "str?"),
        25: ("restartPolicyRules", ("list", "gap:ContainerRestartRule")),
        9: ("volumeMounts", ("list", "gap:VolumeMount")),
        21: ("volumeDevices", ("list", "gap:VolumeDevice")),
        10: ("livenessProbe", "gap:Probe"),
        11: ("readinessProbe", "gap:Probe"),
        22: ("startupProbe", "gap:Probe"),
        12: ("lifecycle", "gap:Lifecycle"),
        13: ("terminationMessagePath", "str"),
        20: ("terminationMessagePolicy", "str"),
        14: ("imagePullPolicy", "str"),
        15: ("securityContext", "gap:SecurityContext"),
        16: ("stdin", "bool"),
        17: ("stdinOnce", "bool"),
        18: ("tty", "bool"),
    },
)
POD_SPEC: Table = (
    "PodSpec",
    {
        1: ("volumes", ("list", "gap:Volume")),
        20: ("initContainers", ("list", CONTAINER)),
        2: ("containers", ("list", CONTAINER)),
        34: ("ephemeralContainers", ("list", "gap:EphemeralContainer")),
        3: ("restartPolicy", "str"),
        4: ("terminationGracePeriodSeconds", "int?"),
        5: ("activeDeadlineSeconds", "int?"),
        6: ("dnsPolicy", "str"),
        7: ("nodeSelector", ("map", "str")),
        8: ("serviceAccountName", "str"),
        9: ("serviceAccount", "str"),
        21: ("automountServiceAccountToken", "bool?"),
        10: ("nodeName", "str"),
        11: ("hostNetwork", "bool"),
        12: ("hostPID", "bool"),
        13: ("hostIPC", "bool"),
        27: ("shareProcessNamespace", "bool?"),
        14: ("securityContext", "gap:PodSecurityContext"),
        15: ("imagePullSecrets", ("list", LOCAL_OBJECT_REFERENCE)),
        16: ("hostname", "str"),
        17: ("subdomain", "str"),
        18: ("affinity", "gap:Affinity"),
        19: ("schedulerName", "str"),
        22: ("tolerations", ("list", "gap:Toleration")),
        23: ("hostAliases", ("list", "gap:HostAlias")),
        24: ("priorityClassName", "str"),
        25: ("priority", "int?"),
        26: ("dnsConfig", "gap:PodDNSConfig"),
        28: ("readinessGates", ("list", "gap:PodReadinessGate")),
        29: ("runtimeClassName", "str?"),
        30: ("enableServiceLinks", "bool?"),
        31: ("preemptionPolicy", "str?"),
        32: ("overhead", ("map", "quantity")),
        33: ("topologySpreadConstraints", ("list", "gap:TopologySpreadConstraint")),
        35: ("setHostnameAsFQDN", "bool?"),
        36: ("os", "gap:PodOS"),
        37: ("hostUsers", "bool?"),
        38: ("schedulingGates", ("list", "gap:PodSchedulingGate")),
        39: ("resourceClaims", ("list", "gap:PodResourceClaim")),
        40: ("resources", RESOURCE_REQUIREMENTS),
        41: ("hostnameOverride", "str?"),
        43: ("schedulingGroup", "gap:PodSchedulingGroup"),
        44: ("evictionResponders", ("list", "gap:EvictionResponder")),
    },
)
POD_TEMPLATE_SPEC: Table = (
    "PodTemplateSpec",
    {
        1: ("metadata", OBJECT_META),
        2: ("spec", POD_SPEC),
    },
)
ROLLING_UPDATE_DEPLOYMENT: Table = (
    "RollingUpdateDeployment",
    {
        1: ("maxUnavailable", "intorstr"),
        2: ("maxSurge", "intorstr"),
    },
)
DEPLOYMENT_STRATEGY: Table = (
    "DeploymentStrategy",
    {
        1: ("type", "str"),
        2: ("rollingUpdate", ROLLING_UPDATE_DEPLOYMENT),
    },
)
DEPLOYMENT_SPEC: Table = (
    "DeploymentSpec",
    {
        1: ("replicas", "int?"),
        2: ("selector", LABEL_SELECTOR),
        3: ("template", POD_TEMPLATE_SPEC),
        4: ("strategy", DEPLOYMENT_STRATEGY),
        5: ("minReadySeconds", "int"),
        6: ("revisionHistoryLimit", "int?"),
        7: ("paused", "bool"),
        9: ("progressDeadlineSeconds", "int?"),
    },
)
DEPLOYMENT_STATUS: Table = (
    "DeploymentStatus",
    {
        1: ("observedGeneration", "int"),
        2: ("replicas", "int"),
        3: ("updatedReplicas", "int"),
        7: ("readyReplicas", "int"),
        4: ("availableReplicas", "int"),
        5: ("unavailableReplicas", "int"),
        9: ("terminatingReplicas", "int?"),
        6: ("conditions", ("list", "gap:DeploymentCondition")),
        8: ("collisionCount", "int?"),
    },
)
DEPLOYMENT: Table = (
    "Deployment",
    {
        1: ("metadata", OBJECT_META),
        2: ("spec", DEPLOYMENT_SPEC),
        3: ("status", DEPLOYMENT_STATUS),
    },
)
# policy/v1 PodDisruptionBudget (kubernetes/api policy/v1/types.go tags)
POD_DISRUPTION_BUDGET_SPEC: Table = (
    "PodDisruptionBudgetSpec",
    {
        1: ("minAvailable", "intorstr"),
        2: ("selector", LABEL_SELECTOR),
        3: ("maxUnavailable", "intorstr"),
        4: ("unhealthyPodEvictionPolicy", "str?"),
    },
)
POD_DISRUPTION_BUDGET_STATUS: Table = (
    "PodDisruptionBudgetStatus",
    {
        1: ("observedGeneration", "int"),
        2: ("disruptedPods", ("map", "time")),
        3: ("disruptionsAllowed", "int?"),
        4: ("currentHealthy", "int?"),
        5: ("desiredHealthy", "int?"),
        6: ("expectedPods", "int?"),
        7: ("conditions", ("list", "gap:Condition")),
    },
)
POD_DISRUPTION_BUDGET: Table = (
    "PodDisruptionBudget",
    {
        1: ("metadata", OBJECT_META),
        2: ("spec", POD_DISRUPTION_BUDGET_SPEC),
        3: ("status", POD_DISRUPTION_BUDGET_STATUS),
    },
)


KINDS: dict[tuple[str, str], Table] = {
    ("apps/v1", "Deployment"): DEPLOYMENT,
    ("policy/v1", "PodDisruptionBudget"): POD_DISRUPTION_BUDGET,
}
