#!/usr/bin/env bash
# The broker of docker-compose.secure.yml, in the apache/kafka image: the secured local
# broker's settings (deploy/local/kafka_secure.py) with compose's names.
#
#   SASL_SSL   kafka:9092 (services, inter-broker as `broker`) and, published on the host,
#              HOST 127.0.0.1:${ADVERTISED_HOST_PORT}: TLS, then SCRAM-SHA-512
#   CONTROLLER kafka:9093: TLS with a client certificate of the CA (the broker itself)
#
# Why a script rather than the image's KAFKA_* variables: the image formats the storage
# without SCRAM users and has no way to add them, and the broker's own password would
# have to sit in an environment variable. Here every user of the credentials folder
# (deploy/compose/secure_material.py: admin, broker and one per principal of
# deploy/security/principals.yaml) is given to `kafka-storage format --add-scram`, and the
# passwords are read from files. The base file's KAFKA_* variables are not read.
#
# --ignore-formatted: on an existing data volume the users are those of its first start;
# after adding a principal, start afresh (`docker compose ... down -v`) or add it with
# kafka-configs.sh --alter --entity-type users as admin.
set -euo pipefail

tls=/etc/kafka/mash/tls
credentials=/etc/kafka/mash/credentials
config=/opt/kafka/config/mash-secure.properties
admin_config=/opt/kafka/config/mash-admin.properties

store_password="$(<"$tls/store.password")"
jaas() {
    printf 'org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";' \
        "$1" "$(<"$credentials/$1.password")"
}

# Written readable by the broker's user only: it holds the store and broker passwords.
umask 077
cat >"$config" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
listeners=SASL_SSL://:9092,CONTROLLER://:9093,HOST://:19092
advertised.listeners=SASL_SSL://kafka:9092,HOST://127.0.0.1:${ADVERTISED_HOST_PORT:-19092}
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL,HOST:SASL_SSL
log.dirs=/var/lib/kafka/data
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$(jaas broker)
listener.name.host.scram-sha-512.sasl.jaas.config=$(jaas broker)
# One keystore (CN=broker; kafka, localhost, 127.0.0.1) and one truststore (the CA).
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls/broker.p12
ssl.keystore.password=$store_password
ssl.truststore.type=PKCS12
ssl.truststore.location=$tls/truststore.p12
ssl.truststore.password=$store_password
ssl.enabled.protocols=TLSv1.3,TLSv1.2
ssl.client.auth=none
# Only a certificate of the CA gets onto the controller listener (the broker, CN=broker ->
# User:broker, a super user); a PLAINTEXT one would let any container in as ANONYMOUS.
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([a-z0-9-]+)\$/\$1/,DEFAULT
# Authorisation: ACLs only (the acls job applies deploy/security/principals.yaml).
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:broker;User:admin
# One node: every replication factor must be 1, or consumer groups never form.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
num.partitions=1
# Topics are created explicitly, by the operator (the topics job, as admin).
auto.create.topics.enable=false
PROPERTIES

# The healthcheck's login: Kafka's own tools as the admin super user.
cat >"$admin_config" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$(jaas admin)
ssl.truststore.type=PKCS12
ssl.truststore.location=$tls/truststore.p12
ssl.truststore.password=$store_password
PROPERTIES

shopt -s nullglob
scram=()
for file in "$credentials"/*.password; do
    name="$(basename "$file" .password)"
    scram+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$(<"$file")]")
done
if [[ ${#scram[@]} -eq 0 ]]; then
    echo "kafka-secure: no passwords in $credentials (python -m deploy.compose.secure_material)" >&2
    exit 1
fi

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$CLUSTER_ID" \
    --config "$config" "${scram[@]}"
exec /opt/kafka/bin/kafka-server-start.sh "$config"
