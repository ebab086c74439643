package kubetest

// ringnetd's rights: the ClusterRole of deploy/ringnet.yaml, read from the
// tree so that tests run with exactly what a cluster gives ringnetd, and
// bound to RingnetdUser; and the DaemonSet, whose security context tests
// run ringnetd with.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// DeployManifest is the manifest that holds ringnetd's ClusterRole,
// relative to the repository's root.
const DeployManifest = "deploy/ringnet.yaml"

// RingnetdRole returns the ClusterRole of DeployManifest, found above the
// working directory or this source file: the rights ringnetd has in a
// cluster. There must be exactly one.
func RingnetdRole() (*rbacv1.ClusterRole, error) {
	role := &rbacv1.ClusterRole{}
	return role, deployObject(rbacv1.SchemeGroupVersion.String(), "ClusterRole", role)
}

// RingnetDaemonSet returns the DaemonSet of DeployManifest: how a cluster
// runs ringnetd on every node. There must be exactly one.
func RingnetDaemonSet() (*appsv1.DaemonSet, error) {
	ds := &appsv1.DaemonSet{}
	return ds, deployObject(appsv1.SchemeGroupVersion.String(), "DaemonSet", ds)
}

// deployObject decodes, strictly, into obj the one object of DeployManifest
// with the apiVersion and kind.
func deployObject(apiVersion, kind string, obj any) error {
	path, err := findUp(DeployManifest)
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	defer f.Close()
	found := false
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("kubetest: %s: %w", path, err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return fmt.Errorf("kubetest: %s: %w", path, err)
		}
		if tm.APIVersion != apiVersion || tm.Kind != kind {
			continue
		}
		if found {
			return fmt.Errorf("kubetest: %s has two %s objects", path, kind)
		}
		found = true
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return fmt.Errorf("kubetest: %s: %s: %w", path, kind, err)
		}
	}
	if !found {
		return fmt.Errorf("kubetest: %s has no %s", path, kind)
	}
	return nil
}

// GrantRingnetd creates RingnetdRole's ClusterRole and binds it to
// RingnetdUser, as the manifest's ClusterRoleBinding binds it to ringnetd's
// service account, and returns once the API server's authorizer lets the
// user do every verb of it (RBAC takes a moment to see a new binding), or
// fails after 20 s. Call it once per cluster.
func (c *Cluster) GrantRingnetd(ctx context.Context) error {
	role, err := RingnetdRole()
	if err != nil {
		return err
	}
	if _, err := c.client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("kubetest: grant ringnetd: %w", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name + "-" + RingnetdUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: RingnetdUser}},
	}
	if _, err := c.client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("kubetest: grant ringnetd: %w", err)
	}
	ringnetd, err := kubernetes.NewForConfig(c.RESTConfig(c.RingnetdToken))
	if err != nil {
		return fmt.Errorf("kubetest: grant ringnetd: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		denied, err := deniedOf(ctx, ringnetd, role)
		switch {
		case err != nil:
			return fmt.Errorf("kubetest: grant ringnetd: %w", err)
		case len(denied) == 0:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubetest: grant ringnetd: RBAC still denies %s: %w", strings.Join(denied, ", "), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deniedOf returns the verbs of role that the authorizer denies the
// client's user now, as "verb group/resource".
func deniedOf(ctx context.Context, c kubernetes.Interface, role *rbacv1.ClusterRole) ([]string, error) {
	var denied []string
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				resource, sub, _ := strings.Cut(res, "/")
				for _, v := range r.Verbs {
					rev, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
						Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
							Verb: v, Group: g, Resource: resource, Subresource: sub}}}, metav1.CreateOptions{})
					if err != nil {
						return nil, err
					}
					if !rev.Status.Allowed {
						denied = append(denied, v+" "+g+"/"+res)
					}
				}
			}
		}
	}
	return denied, nil
}
