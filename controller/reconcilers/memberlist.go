package reconcilers

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
)

var memberlistKey = reconcile.Request{NamespacedName: types.NamespacedName{Namespace: v1beta1.Namespace, Name: k8s.MemberlistSecretName}}

// MemberlistKeyReconciler makes sure the Secret with the speakers' gossip
// encryption key exists: it creates it with a random key when it is missing
// (at start, or after someone deletes it to rotate the key) and never
// changes an existing one. A key the speakers cannot use is reported with
// a Warning Event on the Secret (the speakers keep their current key and
// say so in their SpeakerStatus).
type MemberlistKeyReconciler struct {
	Client client.Client
	Events k8s.EventRecorder
	Log    *slog.Logger
	// reported is the last bad key reported, so a resync does not repeat it.
	reported string
}

// ReasonInvalidMemberlistKey is the Event reason for a key the speakers
// cannot use.
const ReasonInvalidMemberlistKey = "InvalidMemberlistKey"

// SetupWithManager registers the controller; it also runs once at start.
func (r *MemberlistKeyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("memberlist-key").
		For(&corev1.Secret{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetNamespace() == v1beta1.Namespace && o.GetName() == k8s.MemberlistSecretName
		}))).
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(memberlistKey)
			return nil
		})).
		Complete(r)
}

// Reconcile creates the Secret if it does not exist.
func (r *MemberlistKeyReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if req != memberlistKey {
		return reconcile.Result{}, nil
	}
	var s corev1.Secret
	err := r.Client.Get(ctx, req.NamespacedName, &s)
	if err == nil {
		// Someone else's Secret is never changed, but a key memberlist cannot
		// use is worth saying where the user looks.
		if err := k8s.CheckMemberlistKey(s.Data[k8s.MemberlistSecretKey]); err != nil {
			note := fmt.Sprintf("the %q entry is not a usable memberlist key: %v; the speakers keep their current key (set a valid one, or delete this Secret to have a new one made)", k8s.MemberlistSecretKey, err)
			if note+s.ResourceVersion != r.reported {
				r.Log.Error("the memberlist Secret has no usable key", "secret", v1beta1.Namespace+"/"+k8s.MemberlistSecretName, "err", err)
				if r.Events != nil {
					s.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
					r.Events.Warning(&s, ReasonInvalidMemberlistKey, "Validate", note)
				}
				r.reported = note + s.ResourceVersion
			}
		}
		return reconcile.Result{}, nil
	}
	if !apierrors.IsNotFound(err) {
		return reconcile.Result{}, fmt.Errorf("read the memberlist Secret: %w", err)
	}
	key := make([]byte, k8s.MemberlistKeySize)
	if _, err := rand.Read(key); err != nil {
		return reconcile.Result{}, fmt.Errorf("memberlist key: %w", err)
	}
	s = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: v1beta1.Namespace, Name: k8s.MemberlistSecretName,
			Labels: map[string]string{"app.kubernetes.io/name": "herald", "app.kubernetes.io/component": "memberlist"},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{k8s.MemberlistSecretKey: key},
	}
	if err := r.Client.Create(ctx, &s, client.FieldOwner(v1beta1.FieldManagerController)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("create Secret %s/%s: %w", v1beta1.Namespace, k8s.MemberlistSecretName, err)
	}
	r.Log.Info("created the memberlist key Secret", "secret", v1beta1.Namespace+"/"+k8s.MemberlistSecretName)
	return reconcile.Result{}, nil
}
