package lab

import "context"

// Kubectl runs the lab's kubectl with the admin kubeconfig and returns its output.
func (l *Lab) Kubectl(ctx context.Context, args ...string) (string, error) {
	return l.Env.Kubectl(ctx, args...)
}

// Apply runs kubectl apply for manifest files or folders.
func (l *Lab) Apply(ctx context.Context, paths ...string) error {
	args := []string{"apply"}
	for _, p := range paths {
		args = append(args, "-f", p)
	}
	_, err := l.Kubectl(ctx, args...)
	return err
}

// DemoManifest is the demo workload (Deployment web + LoadBalancer Service
// web in namespace demo), relative to the repository root.
const DemoManifest = "e2e/lab/demo/web.yaml"
