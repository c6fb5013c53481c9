// SPDX-License-Identifier: GPL-2.0
// XDP programs of the vrouter: steer into AF_XDP only what the vrouter owns and pass
// everything else to the kernel, so the node's own traffic keeps working.
//
// One copy is loaded per port; `xsks` maps the receive queue to the AF_XDP socket of
// the worker that owns that queue. A queue with no socket yet passes to the kernel.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// What else on the fabric is the vrouter's: node ports on the node's address and
// external IPs' service ports (TCP, UDP). Key: the destination address as it is on
// the wire (a __u32 read in host order) << 32 | protocol << 16 | destination port;
// the control side keeps it equal to the services' external ports.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} claimed SEC(".maps");

// Fabric source NAT: replies to the node's address on these ports are the vrouter's.
// [0]: the node's address as on the wire (0: no source NAT); [1]: TCP first << 16 |
// last; [2]: UDP first << 16 | last; [3]: ICMP echo identifiers, first << 16 | last.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} snat_ports SEC(".maps");

// The start of an ICMP echo message (linux/icmp.h pulls in libc headers).
struct echo_hdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u16 id;
	__u16 sequence;
};

#define ICMP_ECHO_REPLY 0
#define ICMP_ECHO_REQUEST 8

// True if `port` is in range [at] of snat_ports.
static __always_inline int in_snat_range(__u32 at, __u16 port)
{
	__u64 *range = bpf_map_lookup_elem(&snat_ports, &at);
	return range && port >= (*range >> 16) && port <= (*range & 0xffff);
}

// An ICMP error (destination unreachable, time exceeded, parameter problem) about a
// packet that left through source NAT: it quotes the node's address and a port (an
// echo identifier) of the ranges as its source. Quotes with IP options are not
// looked into.
static __always_inline int quotes_snat(struct echo_hdr *icmp, __u32 node, void *end)
{
	if (icmp->type != 3 && icmp->type != 11 && icmp->type != 12)
		return 0;
	struct iphdr *inner = (void *)(icmp + 1);
	if ((void *)(inner + 1) > end || inner->ihl != 5 || inner->saddr != node)
		return 0;
	struct echo_hdr *l4 = (void *)(inner + 1);
	if ((void *)(l4 + 1) > end)
		return 0;
	if (inner->protocol == IPPROTO_TCP || inner->protocol == IPPROTO_UDP) {
		// The source port is the first half word of both.
		__u16 port = bpf_ntohs(*(__u16 *)l4);
		return in_snat_range(inner->protocol == IPPROTO_TCP ? 1 : 2, port);
	}
	if (inner->protocol == IPPROTO_ICMP && l4->type == ICMP_ECHO_REQUEST)
		return in_snat_range(3, bpf_ntohs(l4->id));
	return 0;
}

// Fragmented datagrams whose first fragment the fabric program steered: their later
// fragments, which carry no port, follow it. Key: source, destination (as on the
// wire), IP identification and protocol; least recently used records make room.
struct frag_key {
	__u32 saddr;
	__u32 daddr;
	__u16 id;
	__u8 protocol;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct frag_key);
	__type(value, __u8);
} frag_heads SEC(".maps");

// Steers the frame to the vrouter; a first fragment is recorded for the later ones.
static __always_inline int steer(struct xdp_md *ctx, struct iphdr *ip)
{
	if (ip->frag_off & bpf_htons(0x2000)) {
		struct frag_key key = { ip->saddr, ip->daddr, ip->id, ip->protocol, 0 };
		__u8 one = 1;
		bpf_map_update_elem(&frag_heads, &key, &one, BPF_ANY);
	}
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

// Pod ports: every frame a pod sends is the vrouter's. Frame-capable (xdp.frags): a
// pod's MTU may exceed a page, its frames then reach the socket as chains.
SEC("xdp.frags")
int vrouter_pod(struct xdp_md *ctx)
{
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

// Fabric port: only overlay tunnels (MPLS over UDP 6635 and legacy 51234, VXLAN 4789,
// MPLS over GRE) and the claimed ports (above) go to the vrouter; ARP, SSH, the
// kubelet and everything else of the node pass to the kernel. Headers are read from
// the first buffer only, so a multi-buffer frame (xdp.frags) is steered the same way.
SEC("xdp.frags")
int vrouter_fabric(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl < 5)
		return XDP_PASS;
	if (ip->protocol == IPPROTO_GRE)
		return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_ICMP)
		return XDP_PASS;
	if (ip->frag_off & bpf_htons(0x1fff)) {
		// A later fragment: the vrouter's if its first fragment was.
		struct frag_key key = { ip->saddr, ip->daddr, ip->id, ip->protocol, 0 };
		if (bpf_map_lookup_elem(&frag_heads, &key))
			return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
		return XDP_PASS;
	}
	__u32 at = 0;
	__u64 *node = bpf_map_lookup_elem(&snat_ports, &at);
	if (ip->protocol == IPPROTO_ICMP) {
		// An echo reply to a pod's ping that left through source NAT, or an error
		// about a pod's packet that did.
		struct echo_hdr *icmp = (void *)ip + ip->ihl * 4;
		if ((void *)(icmp + 1) > end || !node || *node == 0 || (__u32)*node != ip->daddr)
			return XDP_PASS;
		if (icmp->type == ICMP_ECHO_REPLY && in_snat_range(3, bpf_ntohs(icmp->id)))
			return steer(ctx, ip);
		if (!(ip->frag_off & bpf_htons(0x2000)) && quotes_snat(icmp, ip->daddr, end))
			return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
		return XDP_PASS;
	}
	// Both transports start with the source and destination ports.
	struct udphdr *l4 = (void *)ip + ip->ihl * 4;
	if ((void *)(l4 + 1) > end)
		return XDP_PASS;
	__u16 port = bpf_ntohs(l4->dest);
	// Tunnels are not reassembled: a fragmented one is the kernel's, as before.
	if (ip->protocol == IPPROTO_UDP && (port == 6635 || port == 51234 || port == 4789))
		return (ip->frag_off & bpf_htons(0x2000)) ? XDP_PASS
							   : bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	__u64 key = ((__u64)ip->daddr << 32) | ((__u64)ip->protocol << 16) | port;
	if (bpf_map_lookup_elem(&claimed, &key))
		return steer(ctx, ip);
	if (!node || *node == 0 || (__u32)*node != ip->daddr)
		return XDP_PASS;
	if (in_snat_range(ip->protocol == IPPROTO_TCP ? 1 : 2, port))
		return steer(ctx, ip);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";

// Benchmark sink: counts packets and bytes per CPU and drops them, so that measuring
// costs no busy-polling core. Only UDP, TCP and GRE count (see below).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} sink_counts SEC(".maps");

SEC("xdp")
int vrouter_count_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	// Count what generators and tunnels send (UDP, TCP, GRE over IPv4 or IPv6); the
	// hosts' own chatter (ARP, neighbour discovery, MLD, IGMP) passes, so that the
	// sink stays resolvable and the count stays exact.
	__u8 proto;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		proto = ip->protocol;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		proto = ip6->nexthdr;
	} else {
		return XDP_PASS;
	}
	if (proto != IPPROTO_UDP && proto != IPPROTO_TCP && proto != IPPROTO_GRE)
		return XDP_PASS;
	__u32 key = 0;
	__u64 *packets = bpf_map_lookup_elem(&sink_counts, &key);
	key = 1;
	__u64 *bytes = bpf_map_lookup_elem(&sink_counts, &key);
	if (packets && bytes) {
		*packets += 1;
		*bytes += end - data;
	}
	return XDP_DROP;
}
