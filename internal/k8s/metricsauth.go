package k8s

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// The secure metrics endpoint asks the API server who a caller is
// (TokenReview) and whether it may GET /metrics (SubjectAccessReview),
// and remembers the answer for a while, so that a scraper every few
// seconds costs two API calls a minute, not two per scrape. Herald does
// this itself rather than through controller-runtime's filter, which
// brings in k8s.io/apiserver (with CEL, OpenTelemetry and gRPC): 8 MB of
// code mapped into every speaker (docs/decisions.md).
const (
	// metricsAllowTTL is how long an allowed caller is let in without
	// asking again; a revoked token or role takes effect after it.
	metricsAllowTTL = time.Minute
	// metricsDenyTTL is how long a refusal is remembered: short, so a
	// scraper whose role was just granted waits little.
	metricsDenyTTL = 10 * time.Second
	// metricsAuthEntries bounds the remembered answers: past it they are
	// all dropped (a flood of made-up tokens cannot grow memory).
	metricsAuthEntries = 1024
)

// metricsReviews are the two questions the metrics endpoint asks the API
// server.
type metricsReviews interface {
	// user is who the token belongs to; ok is false for a token the API
	// server does not accept.
	user(ctx context.Context, token string) (info authenticationv1.UserInfo, ok bool, err error)
	// allowed says whether user may use verb on the non-resource path.
	allowed(ctx context.Context, info authenticationv1.UserInfo, verb, path string) (bool, error)
}

// apiReviews asks a real API server.
type apiReviews struct {
	authn authenticationclient.TokenReviewInterface
	authz authorizationclient.SubjectAccessReviewInterface
}

func (a apiReviews) user(ctx context.Context, token string) (authenticationv1.UserInfo, bool, error) {
	tr, err := a.authn.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, false, fmt.Errorf("TokenReview: %w", err)
	}
	return tr.Status.User, tr.Status.Authenticated, nil
}

func (a apiReviews) allowed(ctx context.Context, info authenticationv1.UserInfo, verb, path string) (bool, error) {
	extra := make(map[string]authorizationv1.ExtraValue, len(info.Extra))
	for k, v := range info.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.authz.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: info.Username, UID: info.UID, Groups: info.Groups, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	return sar.Status.Allowed, nil
}

// metricsAnswer is a remembered decision: the HTTP status to answer with
// (200 lets the request through) until when.
type metricsAnswer struct {
	status int
	user   string
	until  time.Time
}

// metricsGate lets through only the requests whose caller the API server
// authenticates and authorizes.
type metricsGate struct {
	reviews metricsReviews
	now     func() time.Time

	mu      sync.Mutex
	answers map[[sha256.Size]byte]metricsAnswer // by hash of token, verb and path
}

func newMetricsGate(r metricsReviews) *metricsGate {
	return &metricsGate{reviews: r, now: time.Now, answers: map[[sha256.Size]byte]metricsAnswer{}}
}

// decide returns the HTTP status for a request with this bearer token (""
// for none), verb and path: 200, 401 (no token, or one the API server does
// not accept), 403 (not authorized) or 500 (the API server could not be
// asked; not remembered), with the reason for anything but 200.
func (g *metricsGate) decide(ctx context.Context, token, verb, path string) (int, string) {
	if token == "" {
		return http.StatusUnauthorized, "Unauthorized: no bearer token"
	}
	// NUL separates the parts: no verb, path or token holds one.
	key := sha256.Sum256([]byte(verb + "\x00" + path + "\x00" + token))
	now := g.now()
	g.mu.Lock()
	a, ok := g.answers[key]
	g.mu.Unlock()
	if ok && now.Before(a.until) {
		return a.status, a.reason(verb, path)
	}
	info, authenticated, err := g.reviews.user(ctx, token)
	if err != nil {
		return http.StatusInternalServerError, "Authentication failed: " + err.Error()
	}
	a = metricsAnswer{status: http.StatusUnauthorized, until: now.Add(metricsDenyTTL)}
	if authenticated {
		allowed, err := g.reviews.allowed(ctx, info, verb, path)
		if err != nil {
			return http.StatusInternalServerError, "Authorization failed: " + err.Error()
		}
		a = metricsAnswer{status: http.StatusForbidden, user: info.Username, until: now.Add(metricsDenyTTL)}
		if allowed {
			a.status, a.until = http.StatusOK, now.Add(metricsAllowTTL)
		}
	}
	g.mu.Lock()
	if len(g.answers) >= metricsAuthEntries {
		clear(g.answers)
	}
	g.answers[key] = a
	g.mu.Unlock()
	return a.status, a.reason(verb, path)
}

func (a metricsAnswer) reason(verb, path string) string {
	switch a.status {
	case http.StatusUnauthorized:
		return "Unauthorized: the API server does not accept the token"
	case http.StatusForbidden:
		return fmt.Sprintf("Forbidden: user %q may not %s %s (ClusterRole %s grants it)", a.user, verb, path, MetricsReaderRole)
	}
	return ""
}

// filter wraps the metrics handler with the gate.
func (g *metricsGate) filter(log logr.Logger, next http.Handler) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !bearer {
			token = ""
		}
		status, reason := g.decide(r.Context(), strings.TrimSpace(token), strings.ToLower(r.Method), r.URL.Path)
		if status != http.StatusOK {
			if status == http.StatusInternalServerError {
				log.Error(nil, "cannot check a metrics request", "reason", reason)
			}
			http.Error(w, reason, status)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}

// authorizedMetrics is the FilterProvider of the secure metrics endpoint.
func authorizedMetrics(cfg *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	authn, err := authenticationclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("TokenReview client: %w", err)
	}
	authz, err := authorizationclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("SubjectAccessReview client: %w", err)
	}
	return newMetricsGate(apiReviews{authn: authn.TokenReviews(), authz: authz.SubjectAccessReviews()}).filter, nil
}
