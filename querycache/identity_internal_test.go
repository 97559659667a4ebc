package querycache

import "testing"

// crc16 must be Redis Cluster's key hash, or markers land on other nodes.
func TestCRC16IsRedisClusterHash(t *testing.T) {
	if got := crc16([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3 (Redis Cluster spec)", got)
	}
	// redis-cli CLUSTER KEYSLOT foo = 12182
	if got := crc16([]byte("foo")) % 16384; got != 12182 {
		t.Fatalf("slot(foo) = %d, want 12182", got)
	}
}
