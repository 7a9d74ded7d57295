// Command kube-controller-manager is the upstream controller manager (garbage collector, namespace
// deletion, token controller), built from k8s.io/kubernetes for kubelb's dev clusters.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	command := app.NewControllerManagerCommand()
	os.Exit(cli.Run(command))
}
