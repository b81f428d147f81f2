{{/*
Names, labels and the values every workload shares.
The habits follow prometheus-community/helm-charts: name, fullname (63-char truncation),
chart, labels and selectorLabels; selectors carry only app.kubernetes.io/name and
app.kubernetes.io/instance (plus app.kubernetes.io/component per workload), never the
chart version.
*/}}

{{/* Chart name, or nameOverride. */}}
{{- define "radiounet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: fullnameOverride, else "<release>-<name>", else the release name
when it already contains the chart name. Truncated at 63 characters (DNS label limit).
*/}}
{{- define "radiounet.fullname" -}}
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

{{/* "<name>-<version>" for the helm.sh/chart label. */}}
{{- define "radiounet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The namespace every namespaced resource is created in. */}}
{{- define "radiounet.namespace" -}}
{{- .Release.Namespace }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "radiounet.labels" -}}
helm.sh/chart: {{ include "radiounet.chart" . }}
{{ include "radiounet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "radiounet.name" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: name and instance only. */}}
{{- define "radiounet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "radiounet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one component. Call with (dict "ctx" $ "component" "tiler").
*/}}
{{- define "radiounet.componentLabels" -}}
{{ include "radiounet.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one component. Call with (dict "ctx" $ "component" "tiler"). */}}
{{- define "radiounet.componentSelectorLabels" -}}
{{ include "radiounet.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Name of one component's resources: "<fullname>-<component>", truncated at 63. */}}
{{- define "radiounet.componentName" -}}
{{- printf "%s-%s" (include "radiounet.fullname" .ctx | trunc (int (sub 62 (len .component)))) .component | trimSuffix "-" }}
{{- end }}

{{- define "radiounet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "radiounet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Annotations shared by every resource: checkov skips that hold for the whole chart.
CKV_K8S_21 (default namespace) only applies when the chart is rendered without a namespace.
*/}}
{{- define "radiounet.namespaceSkip" -}}
{{- if eq .Release.Namespace "default" -}}
checkov.io/skip1: CKV_K8S_21=the namespace is chosen at install time with helm --namespace and never hardcoded in the chart
{{- end }}
{{- end }}

{{/*
An image reference: "repository:tag@digest", "repository:tag" or "repository@digest".
Call with (dict "image" .Values.image "default" .Chart.AppVersion).
*/}}
{{- define "radiounet.imageRef" -}}
{{- $tag := default .default .image.tag | toString }}
{{- if and $tag .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Pull policy: the value when set, else IfNotPresent for an image pinned by digest and
Always for one pinned by tag only (a tag can move; CKV_K8S_15).
*/}}
{{- define "radiounet.pullPolicy" -}}
{{- if .pullPolicy }}
{{- .pullPolicy }}
{{- else if .digest }}
{{- "IfNotPresent" }}
{{- else }}
{{- "Always" }}
{{- end }}
{{- end }}

{{/* The services image. */}}
{{- define "radiounet.image" -}}
{{- include "radiounet.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) }}
{{- end }}

{{/* Kafka bootstrap servers as the services read them (RADIOUNET_KAFKA_BOOTSTRAP). */}}
{{- define "radiounet.kafkaBootstrap" -}}
{{- if eq .Values.kafka.type "strimzi" }}
{{- printf "%s-kafka-bootstrap:9092" (include "radiounet.kafkaCluster" .) }}
{{- else }}
{{- .Values.kafka.external.bootstrap }}
{{- end }}
{{- end }}

{{/*
Kafka bootstrap servers as seen from another namespace (KEDA's operator): fully qualified
for the Strimzi cluster, as given for an external one.
*/}}
{{- define "radiounet.kafkaBootstrapFqdn" -}}
{{- if eq .Values.kafka.type "strimzi" }}
{{- printf "%s-kafka-bootstrap.%s.svc:9092" (include "radiounet.kafkaCluster" .) .Release.Namespace }}
{{- else }}
{{- .Values.kafka.external.bootstrap }}
{{- end }}
{{- end }}

{{/* Name of the Strimzi Kafka cluster (the Kafka resource). */}}
{{- define "radiounet.kafkaCluster" -}}
{{- default (include "radiounet.fullname" .) .Values.kafka.strimzi.clusterName | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/* Ports of the Kafka bootstrap servers (for the NetworkPolicies), one per line. */}}
{{- define "radiounet.kafkaPorts" -}}
{{- if eq .Values.kafka.type "strimzi" }}
{{- "9092" }}
{{- else }}
{{- $ports := list }}
{{- range splitList "," .Values.kafka.external.bootstrap }}
{{- $ports = append $ports (last (splitList ":" (trim .))) }}
{{- end }}
{{- join "\n" (uniq $ports) }}
{{- end }}
{{- end }}

{{/* S3 endpoint host:port (RADIOUNET_S3_ENDPOINT), no scheme. */}}
{{- define "radiounet.s3Endpoint" -}}
{{- if eq .Values.objectStore.type "minio" }}
{{- printf "%s:9000" (include "radiounet.componentName" (dict "ctx" . "component" "object-store")) }}
{{- else }}
{{- .Values.objectStore.external.endpoint }}
{{- end }}
{{- end }}

{{/* RADIOUNET_S3_SECURE: HTTPS to the object store. */}}
{{- define "radiounet.s3Secure" -}}
{{- if eq .Values.objectStore.type "minio" }}
{{- "false" }}
{{- else }}
{{- .Values.objectStore.external.secure | toString }}
{{- end }}
{{- end }}

{{/* Port of the S3 endpoint (for the NetworkPolicies). */}}
{{- define "radiounet.s3Port" -}}
{{- $endpoint := include "radiounet.s3Endpoint" . }}
{{- if contains ":" $endpoint }}
{{- last (splitList ":" $endpoint) }}
{{- else if eq (include "radiounet.s3Secure" .) "true" }}
{{- "443" }}
{{- else }}
{{- "80" }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the S3 credentials. */}}
{{- define "radiounet.s3SecretName" -}}
{{- default (include "radiounet.componentName" (dict "ctx" . "component" "s3")) .Values.objectStore.auth.existingSecret }}
{{- end }}

{{/* TF Serving's gRPC address (RADIOUNET_MODEL_SERVER). */}}
{{- define "radiounet.modelServer" -}}
{{- printf "%s:8500" (include "radiounet.componentName" (dict "ctx" . "component" "model-server")) }}
{{- end }}

{{/* Where the model repository lives in the bucket: the setup Job pushes it there, the model-pull
init container pulls it, the classifier reads each version's threshold from it. */}}
{{- define "radiounet.modelPrefix" -}}
model_repo/
{{- end }}

{{/* The input topic (without prefix) of each stage, as in radiounet.stream.topics. */}}
{{- define "radiounet.inputTopic" -}}
{{- get (dict "fetcher" "pointings" "tiler" "cutouts" "reassembler" "tile-chunks" "classifier" "maps") . }}
{{- end }}

{{/* Most replicas a stage can run: its replicas, or KEDA's maxReplicaCount when enabled. */}}
{{- define "radiounet.maxReplicas" -}}
{{- $values := index .ctx.Values .stage }}
{{- if .ctx.Values.keda.enabled }}
{{- $values.autoscaling.maxReplicas | int }}
{{- else }}
{{- $values.replicas | int }}
{{- end }}
{{- end }}

{{/* Largest partition count of the topics (RADIOUNET_TOPIC_PARTITIONS). */}}
{{- define "radiounet.maxPartitions" -}}
{{- $max := 1 }}
{{- range $topic, $n := .Values.kafka.topics.partitions }}
{{- if gt (int $n) $max }}{{ $max = int $n }}{{ end }}
{{- end }}
{{- $max }}
{{- end }}

{{/*
Object-store settings for the services, the setup Job and the model-pull init container
(RADIOUNET_S3_* and RADIOUNET_BUCKET): addresses as plain values, keys from the Secret.
*/}}
{{- define "radiounet.s3Env" -}}
- name: RADIOUNET_S3_ENDPOINT
  value: {{ include "radiounet.s3Endpoint" . | quote }}
- name: RADIOUNET_S3_SECURE
  value: {{ include "radiounet.s3Secure" . | quote }}
- name: RADIOUNET_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "radiounet.s3SecretName" . }}
      key: {{ .Values.objectStore.auth.accessKeyKey }}
- name: RADIOUNET_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "radiounet.s3SecretName" . }}
      key: {{ .Values.objectStore.auth.secretKeyKey }}
- name: RADIOUNET_BUCKET
  value: {{ .Values.config.bucket | quote }}
{{- end }}

{{/*
Every field of radiounet.stream.settings.Settings, one RADIOUNET_* variable each.
*/}}
{{- define "radiounet.settingsEnv" -}}
- name: RADIOUNET_KAFKA_BOOTSTRAP
  value: {{ include "radiounet.kafkaBootstrap" . | quote }}
- name: RADIOUNET_TOPIC_PREFIX
  value: {{ .Values.kafka.topics.prefix | quote }}
- name: RADIOUNET_TOPIC_PARTITIONS
  value: {{ include "radiounet.maxPartitions" . | quote }}
- name: RADIOUNET_TOPIC_REPLICAS
  value: {{ .Values.kafka.topics.replicas | quote }}
{{- /* With Strimzi the KafkaTopics own the topics: services wait for them (not ready meanwhile). */}}
- name: RADIOUNET_CREATE_TOPICS
  value: {{ ne .Values.kafka.type "strimzi" | quote }}
{{ include "radiounet.s3Env" . }}
- name: RADIOUNET_MODEL_SERVER
  value: {{ include "radiounet.modelServer" . | quote }}
- name: RADIOUNET_MODEL_NAME
  value: {{ .Values.model.name | quote }}
- name: RADIOUNET_MODEL_VERSION
  value: {{ .Values.model.version | int | quote }}
- name: RADIOUNET_MODEL_SIGNATURE
  value: {{ .Values.model.signature | quote }}
- name: RADIOUNET_METRICS_PORT
  value: "9400"
- name: RADIOUNET_METRICS_HOST
  value: "0.0.0.0"
- name: RADIOUNET_INSTANCE
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: RADIOUNET_MAX_POLL_RECORDS
  value: {{ .Values.config.maxPollRecords | int | quote }}
- name: RADIOUNET_MAX_POLL_INTERVAL_MS
  value: {{ .Values.config.maxPollIntervalMs | int64 | quote }}
- name: RADIOUNET_SESSION_TIMEOUT_MS
  value: {{ .Values.config.sessionTimeoutMs | int64 | quote }}
- name: RADIOUNET_RETRY_INITIAL_S
  value: {{ .Values.config.retryInitialSeconds | toString | quote }}
- name: RADIOUNET_RETRY_MAX_S
  value: {{ .Values.config.retryMaxSeconds | toString | quote }}
- name: RADIOUNET_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
{{- end }}

{{/*
Environment the radiounet image needs with a read-only root filesystem: HOME (astropy's and
matplotlib's caches) on the /tmp emptyDir.
*/}}
{{- define "radiounet.runtimeEnv" -}}
- name: HOME
  value: /tmp
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
{{- end }}

{{/* Pod-level settings every pod shares. */}}
{{- define "radiounet.podSpecCommon" -}}
serviceAccountName: {{ include "radiounet.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/* The restricted container securityContext. */}}
{{- define "radiounet.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/*
Fail early on values that render fine but cannot work. Included by validate.yaml.
*/}}
{{- define "radiounet.validate" -}}
{{- $ctx := . }}
{{- range $stage := list "fetcher" "tiler" "reassembler" "classifier" }}
{{- $topic := include "radiounet.inputTopic" $stage }}
{{- $partitions := index $ctx.Values.kafka.topics.partitions $topic | int }}
{{- $max := include "radiounet.maxReplicas" (dict "ctx" $ctx "stage" $stage) | int }}
{{- if gt $max $partitions }}
{{- fail (printf "kafka.topics.partitions.%s must be >= the most replicas of the %s (%d, %s), got %d: extra consumers in group radiounet-%s would sit idle" $topic $stage $max (ternary (printf "%s.autoscaling.maxReplicas" $stage) (printf "%s.replicas" $stage) $ctx.Values.keda.enabled) $partitions $stage) }}
{{- end }}
{{- $autoscaling := (index $ctx.Values $stage).autoscaling }}
{{- if and $ctx.Values.keda.enabled (gt (int $autoscaling.minReplicas) (int $autoscaling.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas must be <= %s.autoscaling.maxReplicas, got %d > %d" $stage $stage (int $autoscaling.minReplicas) (int $autoscaling.maxReplicas)) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.kafka.type "strimzi") (gt (int .Values.kafka.topics.replicas) (int .Values.kafka.strimzi.replicas)) }}
{{- fail (printf "kafka.topics.replicas must be <= kafka.strimzi.replicas (brokers), got %d > %d" (int .Values.kafka.topics.replicas) (int .Values.kafka.strimzi.replicas)) }}
{{- end }}
{{- if eq .Values.kafka.type "strimzi" }}
{{- range $key := list "offsets.topic.replication.factor" "transaction.state.log.replication.factor" "transaction.state.log.min.isr" "default.replication.factor" "min.insync.replicas" }}
{{- $n := index $ctx.Values.kafka.strimzi.config $key | default 1 | int }}
{{- if gt $n (int $ctx.Values.kafka.strimzi.replicas) }}
{{- fail (printf "kafka.strimzi.config.%s must be <= kafka.strimzi.replicas (brokers), got %d > %d" $key $n (int $ctx.Values.kafka.strimzi.replicas)) }}
{{- end }}
{{- end }}
{{- $minIsr := index .Values.kafka.topics.config "min.insync.replicas" | default 1 | int }}
{{- if gt $minIsr (int .Values.kafka.topics.replicas) }}
{{- fail (printf "kafka.topics.config.min.insync.replicas must be <= kafka.topics.replicas, got %d > %d: producers (acks=all) could never write" $minIsr (int .Values.kafka.topics.replicas)) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.kafka.type "external") (not .Values.kafka.external.bootstrap) }}
{{- fail "kafka.external.bootstrap is required with kafka.type=external, e.g. kafka-0.example.org:9092,kafka-1.example.org:9092" }}
{{- end }}
{{- if and (eq .Values.objectStore.type "external") (not .Values.objectStore.external.endpoint) }}
{{- fail "objectStore.external.endpoint is required with objectStore.type=external, e.g. s3.example.org:443 (host:port, no scheme)" }}
{{- end }}
{{- if regexMatch "^[a-zA-Z][a-zA-Z0-9+.-]*://" (include "radiounet.s3Endpoint" .) }}
{{- fail (printf "objectStore.external.endpoint is host:port without a scheme (set objectStore.external.secure for HTTPS), got %q" .Values.objectStore.external.endpoint) }}
{{- end }}
{{- if and (not .Values.objectStore.auth.existingSecret) (or (not .Values.objectStore.auth.accessKey) (not .Values.objectStore.auth.secretKey)) }}
{{- fail "objectStore.auth.accessKey and objectStore.auth.secretKey are required unless objectStore.auth.existingSecret names a Secret" }}
{{- end }}
{{- if and (eq .Values.objectStore.type "minio") (not .Values.objectStore.auth.existingSecret) (lt (len .Values.objectStore.auth.secretKey) 8) }}
{{- fail (printf "objectStore.auth.secretKey must have at least 8 characters (MinIO's root password), got %d" (len .Values.objectStore.auth.secretKey)) }}
{{- end }}
{{- if gt (int .Values.tiler.chunkTiles) (int .Values.modelServer.batching.maxBatchSize) }}
{{- fail (printf "tiler.chunkTiles must be <= modelServer.batching.maxBatchSize (TF Serving rejects a request larger than a batch), got %d > %d" (int .Values.tiler.chunkTiles) (int .Values.modelServer.batching.maxBatchSize)) }}
{{- end }}
{{- if and (eq .Values.fetcher.source.type "mosaics") (not .Values.fetcher.source.mosaics.existingClaim) }}
{{- fail "fetcher.source.mosaics.existingClaim is required with fetcher.source.type=mosaics: a PersistentVolumeClaim holding the survey mosaics" }}
{{- end }}
{{- $tfTag := toString .Values.modelServer.image.tag }}
{{- if hasSuffix "tensorflow/serving" .Values.modelServer.image.repository }}
{{- if and .Values.modelServer.gpu.enabled (not (hasSuffix "-gpu" $tfTag)) }}
{{- fail (printf "modelServer.gpu.enabled needs TF Serving's GPU image (a tag ending in -gpu), got %s:%s; for a CPU-only cluster set modelServer.gpu.enabled=false (ci/cpu-values.yaml)" .Values.modelServer.image.repository $tfTag) }}
{{- end }}
{{- if and (not .Values.modelServer.gpu.enabled) (hasSuffix "-gpu" $tfTag) }}
{{- fail (printf "modelServer.gpu.enabled=false with TF Serving's GPU image %s:%s: use the CPU tag (without -gpu, ci/cpu-values.yaml)" .Values.modelServer.image.repository $tfTag) }}
{{- end }}
{{- end }}
{{- end }}
