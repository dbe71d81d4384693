// Package integration holds dnft's behaviour tests: real packets through
// network namespaces built by package harness, with the firewall programmed
// by dnft and, for the differential tests, by real iptables through
// package reference (CONTRACT.md §4, layer 2).
package integration
