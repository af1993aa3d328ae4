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
