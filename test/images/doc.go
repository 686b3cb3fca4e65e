// Package images holds the programs the real test node runs as containers: standin, which plays the seeds'
// applications (nginx, httpd, tomcat ...) with a behaviour chosen by its environment, and pause, the pod sandbox.
// test/cluster packs them into images (test/tools/imagebuild) and pushes them to the local registry under the
// names and tags the seeds use, so the seeds' manifests run unchanged on the real node.
package images
