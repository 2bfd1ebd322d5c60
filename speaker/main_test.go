package main

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestBindAddress(t *testing.T) {
	addrs := []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "n1"}, {Type: corev1.NodeInternalIP, Address: "fd00:10::11"}, {Type: corev1.NodeInternalIP, Address: "10.0.0.11"}}
	if ip, err := bindAddress("", addrs); err != nil || ip.String() != "fd00:10::11" {
		t.Errorf("first InternalIP: %v %v", ip, err)
	}
	if ip, err := bindAddress("10.0.0.99", addrs); err != nil || ip.String() != "10.0.0.99" {
		t.Errorf("--node-ip wins: %v %v", ip, err)
	}
	if _, err := bindAddress("", addrs[:1]); err == nil {
		t.Error("no InternalIP accepted")
	}
}
