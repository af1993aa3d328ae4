{{/* The chart's name. */}}
{{- define "ductbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object the chart creates. */}}
{{- define "ductbot.fullname" -}}
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
Labels on every object. The chart's own objects are managed by Helm;
app.kubernetes.io/managed-by=ductbot is reserved for what ductbot creates.
*/}}
{{- define "ductbot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ductbot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ductbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ductbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ductbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ductbot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The username Kubernetes gives the ServiceAccount's requests. */}}
{{- define "ductbot.serviceAccountUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "ductbot.serviceAccountName" .) }}
{{- end }}

{{- define "ductbot.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "ductbot.claimName" -}}
{{- default (include "ductbot.fullname" .) .Values.persistence.existingClaim }}
{{- end }}

{{/* "true" when ductbot keeps its state in SQLite (the default): one
replica, the state on the volume. */}}
{{- define "ductbot.sqlite" -}}
{{- $state := default dict (get (default dict .Values.config) "state") }}
{{- if eq (default "sqlite" (get $state "driver")) "sqlite" }}true{{ end }}
{{- end }}

{{/* "true" when config.ha.enabled: replicas, one of which leads. */}}
{{- define "ductbot.ha" -}}
{{- $ha := default dict (get (default dict .Values.config) "ha") }}
{{- if get $ha "enabled" }}true{{ end }}
{{- end }}

{{/* The leader Lease's name: config.ha.lease_name, else <fullname>-leader. */}}
{{- define "ductbot.leaseName" -}}
{{- $ha := default dict (get (default dict .Values.config) "ha") }}
{{- default (printf "%s-leader" (include "ductbot.fullname" .)) (get $ha "lease_name") }}
{{- end }}

{{/*
ductbot.yaml: .Values.config with what the chart decides filled in and
checked. Rendered as YAML.
*/}}
{{- define "ductbot.config" -}}
{{- $config := deepCopy (default dict .Values.config) }}
{{- $state := default dict (get $config "state") }}
{{- $driver := default "sqlite" (get $state "driver") }}
{{- if eq $driver "sqlite" }}
{{- $defaultPath := printf "%s/ductbot.db" (trimSuffix "/" .Values.persistence.mountPath) }}
{{- $path := default $defaultPath (get $state "path") }}
{{- if not (hasPrefix (printf "%s/" (trimSuffix "/" .Values.persistence.mountPath)) $path) }}
{{- fail (printf "config.state.path %q is outside persistence.mountPath %q: the state would be lost on every restart" $path .Values.persistence.mountPath) }}
{{- end }}
{{- $_ := set $state "path" $path }}
{{- $_ := set $config "state" $state }}
{{- end }}
{{- $ha := default dict (get $config "ha") }}
{{- if get $ha "enabled" }}
{{- if ne $driver "postgres" }}
{{- fail "config.ha.enabled needs config.state.driver: postgres (with state.dsn_env or dsn_file): replicas cannot share an SQLite file on a volume" }}
{{- end }}
{{- if and (get $ha "lease_namespace") (ne (get $ha "lease_namespace") .Release.Namespace) }}
{{- fail (printf "config.ha.lease_namespace %q: the chart grants the Lease in the release's namespace %q only" (get $ha "lease_namespace") .Release.Namespace) }}
{{- end }}
{{- $_ := set $ha "lease_namespace" .Release.Namespace }}
{{- $_ := set $ha "lease_name" (include "ductbot.leaseName" .) }}
{{- $_ := set $config "ha" $ha }}
{{- else if gt (int .Values.replicas) 1 }}
{{- fail (printf "replicas: %d needs config.ha.enabled (and config.state.driver: postgres): without leader election every replica would poll Gerrit, deploy and vote" (int .Values.replicas)) }}
{{- end }}
{{- $web := default dict (get $config "web") }}
{{- $listen := default (printf ":%d" (int .Values.port)) (get $web "listen") }}
{{- if not (hasSuffix (printf ":%d" (int .Values.port)) $listen) }}
{{- fail (printf "config.web.listen %q does not listen on port %d (the chart's port value, which the probes and the Service use)" $listen (int .Values.port)) }}
{{- end }}
{{- $_ := set $web "listen" $listen }}
{{- if and .Values.ingress.enabled (not (get $web "public_url")) }}
{{- $scheme := ternary "https" "http" (not (empty .Values.ingress.tlsSecretName)) }}
{{- $_ := set $web "public_url" (printf "%s://%s%s" $scheme .Values.ingress.host (trimSuffix "/" .Values.ingress.path)) }}
{{- end }}
{{- $metricsListen := get $web "metrics_listen" }}
{{- if .Values.metrics.port }}
{{- $want := printf ":%d" (int .Values.metrics.port) }}
{{- if eq (int .Values.metrics.port) (int .Values.port) }}
{{- fail (printf "metrics.port %d is port too: leave metrics.port 0 to serve /metrics there" (int .Values.metrics.port)) }}
{{- end }}
{{- if and $metricsListen (not (hasSuffix $want $metricsListen)) }}
{{- fail (printf "config.web.metrics_listen %q does not listen on metrics.port %d (which the Service and the ServiceMonitor use)" $metricsListen (int .Values.metrics.port)) }}
{{- end }}
{{- $_ := set $web "metrics_listen" (default $want $metricsListen) }}
{{- else if $metricsListen }}
{{- fail (printf "config.web.metrics_listen %q: set metrics.port to its port instead, so that the container, the Service and the ServiceMonitor expose it" $metricsListen) }}
{{- end }}
{{- $_ := set $config "web" $web }}
{{- $kube := default dict (get $config "kubernetes") }}
{{- $_ := set $kube "instance" (include "ductbot.instance" .) }}
{{- $_ := set $config "kubernetes" $kube }}
{{- toYaml $config }}
{{- end }}

{{/*
kubernetes.instance: the instance value, else config.kubernetes.instance,
else the release's full name; both set, they must agree.
*/}}
{{- define "ductbot.instance" -}}
{{- $kube := default dict (get (default dict .Values.config) "kubernetes") }}
{{- $configured := get $kube "instance" }}
{{- if and .Values.instance $configured (ne .Values.instance $configured) }}
{{- fail (printf "instance %q and config.kubernetes.instance %q differ: set one of them" .Values.instance $configured) }}
{{- end }}
{{- $instance := .Values.instance | default $configured | default (include "ductbot.fullname" .) }}
{{- if or (gt (len $instance) 63) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $instance)) }}
{{- fail (printf "instance %q must be a Kubernetes label value: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters" $instance) }}
{{- end }}
{{- $instance }}
{{- end }}

{{/*
`ductbot run --grace`: terminationGracePeriodSeconds less
shutdownMarginSeconds, as a Go duration.
*/}}
{{- define "ductbot.grace" -}}
{{- $period := int .Values.terminationGracePeriodSeconds }}
{{- $margin := int .Values.shutdownMarginSeconds }}
{{- if le $period $margin }}
{{- fail (printf "terminationGracePeriodSeconds %d must be more than shutdownMarginSeconds %d: in-flight steps would get no time to finish" $period $margin) }}
{{- end }}
{{- printf "%ds" (sub $period $margin) }}
{{- end }}

{{/*
The state claim's access modes: persistence.accessModes when set; else
those of the claim that exists (they cannot change); else ReadWriteOncePod
where the cluster has it (1.29 or later), ReadWriteOnce before.
*/}}
{{- define "ductbot.accessModes" -}}
{{- $modes := .Values.persistence.accessModes }}
{{- if not $modes }}
{{- $existing := lookup "v1" "PersistentVolumeClaim" .Release.Namespace (include "ductbot.claimName" .) }}
{{- if $existing }}
{{- $modes = $existing.spec.accessModes }}
{{- else if include "ductbot.hasReadWriteOncePod" . }}
{{- $modes = list "ReadWriteOncePod" }}
{{- else }}
{{- $modes = list "ReadWriteOnce" }}
{{- end }}
{{- end }}
{{- toYaml $modes }}
{{- end }}

{{/*
"true" on Kubernetes 1.29 or later (ReadWriteOncePod is GA). Major and
Minor as the API server reports them ("29+" on some clouds), else parsed
from the version ("v1.29.3+k3s1"); a server that says neither (a
development build: v0.0.0-master) counts as older.
*/}}
{{- define "ductbot.hasReadWriteOncePod" -}}
{{- $kv := .Capabilities.KubeVersion }}
{{- $major := regexFind "^[0-9]+" (toString $kv.Major) }}
{{- $minor := regexFind "^[0-9]+" (toString $kv.Minor) }}
{{- if not (and $major $minor) }}
{{- $parts := regexFind "^v?[0-9]+[.][0-9]+" (toString $kv.Version) | trimPrefix "v" | splitList "." }}
{{- if eq (len $parts) 2 }}
{{- $major = index $parts 0 }}
{{- $minor = index $parts 1 }}
{{- end }}
{{- end }}
{{- if or (gt (atoi (default "0" $major)) 1) (and (eq (atoi (default "0" $major)) 1) (ge (atoi (default "0" $minor)) 29)) }}true{{ end }}
{{- end }}
