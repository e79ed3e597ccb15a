"""ttrpc"""
