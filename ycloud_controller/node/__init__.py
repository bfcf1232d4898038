"""The node agent (`ycloud-controller node`) and the CNI plugin (`ycloud-cni`).

Kept empty: `ycloud-cni` imports `ycloud_controller.node.plugin`, which must cost a kubelet
ADD nothing but the standard library's json, os, socket and sys.
"""
