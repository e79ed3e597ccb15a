"""shim_v2"""
