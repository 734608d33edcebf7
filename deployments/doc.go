// Package deployments holds no code: it is where the deployment files live
// (docker-compose.yml, k8s/, prometheus/, debezium/) and where their test
// keeps them in line with the binaries. The test checks that every variable
// the files set is read by the binary's Config, that ports and probe paths
// are the ones the binaries serve, that commands and images match the
// Dockerfile's targets, that the Connect job registers debezium/ as it is,
// that nothing secret is written down, that the Kubernetes manifests build
// with kustomize, and that the alerts name metrics the code exports.
package deployments
