{{/*
Chart name, truncated to 63 characters (label values and DNS-1123 labels).
*/}}
{{- define "lark-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, plus the chart name unless the release name already holds it.
*/}}
{{- define "lark-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name for cluster-scoped objects (ClusterRole, ClusterRoleBinding): these share one namespace
for the whole cluster, so the release namespace is part of the name and two releases of the
same name in different namespaces (e.g. one per team in namespaced mode) do not collide.
*/}}
{{- define "lark-operator.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "lark-operator.fullname" .) }}
{{- end }}

{{- define "lark-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
*/}}
{{- define "lark-operator.labels" -}}
helm.sh/chart: {{ include "lark-operator.chart" . }}
{{ include "lark-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lark-operator
{{- end }}

{{/*
Selector labels: immutable in a Deployment, so nothing here may change between upgrades.
*/}}
{{- define "lark-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lark-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lark-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lark-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lark-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The leader-election Lease's name (ha.enabled only).
*/}}
{{- define "lark-operator.leaseName" -}}
{{- default (include "lark-operator.fullname" .) .Values.ha.leaseName }}
{{- end }}

{{/*
The cluster resource namespace: where ClusterLarkApps' App Secrets are read from.
*/}}
{{- define "lark-operator.clusterResourceNamespace" -}}
{{- default .Release.Namespace .Values.clusterResourceNamespace }}
{{- end }}

{{/*
Replicas: without leader election, two replicas would both act on every LarkApp, so more
than one needs ha.enabled (values.schema.json caps .Values.replicas at 1).
*/}}
{{- define "lark-operator.replicas" -}}
{{- if .Values.ha.enabled }}{{ .Values.ha.replicas }}{{ else }}{{ .Values.replicas }}{{ end }}
{{- end }}

{{/*
`lark-operator run` arguments, one per line as a YAML list.
*/}}
{{- define "lark-operator.args" -}}
- run
{{- if .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
- --namespace
- {{ . | quote }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
- --health-port
- {{ .Values.healthPort | quote }}
- --log-format
- {{ .Values.logFormat | quote }}
- --log-level
- {{ .Values.logLevel | quote }}
{{- range .Values.allowedBaseUrls }}
- --allowed-base-url
- {{ . | quote }}
{{- end }}
- --events-port
- {{ ternary .Values.events.port 0 .Values.events.enabled | quote }}
- --cluster-resource-namespace
- {{ include "lark-operator.clusterResourceNamespace" . | quote }}
{{- if .Values.ha.enabled }}
- --leader-elect
- --leader-elect-namespace
- {{ .Release.Namespace | quote }}
- --leader-elect-name
- {{ include "lark-operator.leaseName" . | quote }}
{{- with .Values.ha.leaseDuration }}
- --lease-duration
- {{ . | quote }}
{{- end }}
{{- with .Values.ha.renewDeadline }}
- --renew-deadline
- {{ . | quote }}
{{- end }}
{{- with .Values.ha.retryPeriod }}
- --retry-period
- {{ . | quote }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
RBAC rules the operator needs in every namespace it serves (a Role per watched namespace in
namespaced mode, part of the ClusterRole otherwise). Each rule says which code needs it.
*/}}
{{- define "lark-operator.namespacedRules" -}}
# LarkApps: kopf lists and watches them and patches its own annotations and finalizer
# (larkservice.io/*); the controller reads one (get) and patches the annotation that records
# a handled `kubectl lark refresh`. No create/update/delete: users own their LarkApps.
- apiGroups: [larkservice.io]
  resources: [larkapps]
  verbs: [get, list, watch, patch]
# Status is a subresource: conditions, token, probes and lastError go in by merge patch.
- apiGroups: [larkservice.io]
  resources: [larkapps/status]
  verbs: [patch]
# Secrets: get reads the app secret and the probes' DSN/URL Secrets; list/watch is the
# metadata-only watch that notices edits to referenced Secrets (and hand edits of token
# Secrets, which are restored); create/update/patch/delete manage the token Secret
# (created, replaced on refresh, owner reference cut on deletionPolicy Retain, deleted on
# deletionPolicy Delete). Names are chosen by users (spec.target.secretName), so they cannot
# be narrowed with resourceNames: the admission policy (admissionpolicy.yaml) confines the
# writes to Secrets labelled as the operator's. patch serves only the owner-reference cut
# (one merge PATCH) and grants nothing get + update do not. No deletecollection.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, patch, delete]
# Events on LarkApps, written on transitions (kopf's own event posting is switched off).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# target.rolloutRestart: read a workload's pod template annotation and set it (one merge
# PATCH per new token). These three kinds only, no create/delete/update/list; names are
# chosen by users, so resourceNames cannot narrow it: the admission policy
# (admissionpolicy.yaml) lets these patches change that one annotation and nothing else.
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, patch]
{{- end }}

{{/*
Rules in the cluster resource namespace (namespaced mode, when it is not watched anyway):
reading the App Secrets of ClusterLarkApps, and noticing at once that one changed.
*/}}
{{- define "lark-operator.clusterResourceRules" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
{{- end }}

{{/*
Events on ClusterLarkApps (namespaced mode, when "default" is not watched anyway): the
apiserver keeps a cluster-scoped object's Events in the namespace "default".
*/}}
{{- define "lark-operator.clusterEventRules" -}}
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/*
Store apps (events.enabled only), in the release namespace (the operator's cluster resource
namespace): one Secret per store app holds its app_ticket and learned tenants. get/create/
update read and write it (read-modify-write with resourceVersion); list/watch is the
leader's label-selected watch that picks up what a standby stored. The admission policy
lets it create only labelled Secrets.
*/}}
{{- define "lark-operator.storeRules" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update]
{{- end }}

{{/*
Leader-election rules (ha.enabled only), in the release namespace where the Lease lives.
*/}}
{{- define "lark-operator.leaderElectionRules" -}}
# The first candidate creates the Lease. RBAC cannot limit create by name (the name is not
# known when a create is authorized), so this is any Lease, in this namespace only.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
# Read the holder; take over, renew and release by PUT with resourceVersion (optimistic:
# of two racing candidates one gets 409). Only this release's Lease; no delete, list, watch.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [{{ include "lark-operator.leaseName" . | quote }}]
  verbs: [get, update]
{{- end }}

{{/*
Cluster-scoped rules kopf needs (CRDs in both modes, namespaces in namespaced mode).
*/}}
{{- define "lark-operator.clusterRules" -}}
# kopf watches CRDs (cluster-scoped) to notice the LarkApp CRD appearing or changing after
# start-up (e.g. installed after the operator, or upgraded to a new version); without it,
# kopf only scans once at start-up through API discovery (which every authenticated user
# may read) and an operator started before its CRD would never serve LarkApps. Read-only;
# list/watch cannot be narrowed by resourceNames, so this reads every CRD's definition
# (schemas, no user data).
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
# ClusterLarkApps (cluster-scoped): listed once at start and watched by kopf; their status
# is written by merge patch. No create/update/delete: admins own them.
- apiGroups: [larkservice.io]
  resources: [clusterlarkapps]
  verbs: [list, watch]
- apiGroups: [larkservice.io]
  resources: [clusterlarkapps/status]
  verbs: [patch]
# Namespaces, metadata only: their labels decide a ClusterLarkApp's
# allowedNamespaces.selector; in namespaced mode kopf also matches the --namespace names
# against them (without it, kopf retries the forbidden list for ~55 s on every start).
# Names and labels are not sensitive; no get, nothing else.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
