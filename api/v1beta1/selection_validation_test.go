package v1beta1_test

import "testing"

// The Service selection, node preference and withdrawal variants of
// docs/services.md, as users write them (and as MetalLB writes its
// selectors): the API server must accept each one.
var validSelections = map[string]string{
	"L2: serviceSelectors by label and expression": `kind: L2Advertisement
spec: {serviceSelectors: [{matchLabels: {tier: gold}}, {matchExpressions: [{key: example.com/exposure, operator: In, values: [lan, both]}, {key: legacy, operator: DoesNotExist}]}]}`,
	"L2: an empty service selector (every Service)": `kind: L2Advertisement
spec: {serviceSelectors: [{}]}`,
	"L2: ordered preferred nodes": `kind: L2Advertisement
spec: {nodeSelectors: [{matchLabels: {role: lb}}], preferredNodeSelectors: [{matchLabels: {zone: a}}, {matchExpressions: [{key: zone, operator: NotIn, values: [c]}]}]}`,
	"L2: withdraw without endpoints": `kind: L2Advertisement
spec: {ipPools: [lan], withdrawWithoutEndpoints: true}`,
	"BGP: per-Service communities": `kind: BGPAdvertisement
spec: {ipPools: [routed], serviceSelectors: [{matchLabels: {tier: gold}}], communities: ["64500:900"]}`,
	"BGP: withdraw without endpoints": `kind: BGPAdvertisement
spec: {withdrawWithoutEndpoints: true, serviceSelectors: [{matchExpressions: [{key: site, operator: Exists}]}]}`,
}

func TestAPIServerAcceptsSelectionVariants(t *testing.T) { acceptsAll(t, validSelections) }
