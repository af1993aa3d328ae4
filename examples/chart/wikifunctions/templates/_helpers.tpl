{{/* The name of one component's resources: <release>-<component>. */}}
{{- define "wikifunctions.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every resource carries. */}}
{{- define "wikifunctions.labels" -}}
app.kubernetes.io/name: wikifunctions
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component. */}}
{{- define "wikifunctions.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Pod annotations that only ductbot's local (simulated) cluster reads:
     <component>.simulate.mode makes the component's pods misbehave the way
     a broken service does; "" (the default) is normal.
       crash          containers exit 1 again and again (CrashLoopBackOff,
                      growing restart count); their log says "simulated crash"
       image-missing  the image cannot be pulled (ErrImagePull, ImagePullBackOff)
       never-ready    Running, never Ready (the readiness probe keeps failing)
     <component>.simulate.log replaces the lines the pods print. */}}
{{- define "wikifunctions.simulate" -}}
{{- $sim := .values.simulate | default dict -}}
{{- $mode := $sim.mode | default "" -}}
{{- if not (has $mode (list "" "crash" "image-missing" "never-ready")) -}}
{{- fail (printf "%s.simulate.mode is %q; use \"\", crash, image-missing or never-ready" .component $mode) -}}
{{- end -}}
{{- $log := $sim.log | default "" -}}
{{- if and (not $log) (eq $mode "crash") -}}
{{- $log = printf "%s: starting %s:%s\n%s: simulated crash: exiting with status 1" .component .values.image.repository (toString .values.image.tag) .component -}}
{{- else if and (not $log) (eq $mode "never-ready") -}}
{{- $log = printf "%s: starting %s:%s\n%s: waiting for a dependency; not ready yet" .component .values.image.repository (toString .values.image.tag) .component -}}
{{- end -}}
{{- /* Always set, even empty: an upgrade after a failed one is diffed
       against the last deployed revision, and an annotation only the
       failed one set would otherwise stay on the live objects. */ -}}
annotations:
  sim.ductbot.dev/mode: {{ $mode | quote }}
  sim.ductbot.dev/log: {{ $log | quote }}
{{- end -}}

{{/* A Deployment and a Service for one component.
     Arguments: root (the top context), component (its name), values, env. */}}
{{- define "wikifunctions.component" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "wikifunctions.fullname" . }}
  labels:
    {{- include "wikifunctions.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  replicas: {{ .values.replicas }}
  selector:
    matchLabels:
      {{- include "wikifunctions.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "wikifunctions.labels" .root | nindent 8 }}
        {{- include "wikifunctions.selector" . | nindent 8 }}
      {{- with include "wikifunctions.simulate" . }}
      {{- . | nindent 6 }}
      {{- end }}
    spec:
      containers:
        - name: {{ .component }}
          image: "{{ .values.image.repository }}:{{ .values.image.tag }}"
          imagePullPolicy: {{ .values.image.pullPolicy }}
          ports:
            - name: http
              containerPort: {{ .values.port }}
          {{- with .env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          readinessProbe:
            tcpSocket:
              port: http
          resources:
            {{- toYaml .values.resources | nindent 12 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "wikifunctions.fullname" . }}
  labels:
    {{- include "wikifunctions.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  selector:
    {{- include "wikifunctions.selector" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .values.port }}
      targetPort: http
{{- end -}}
