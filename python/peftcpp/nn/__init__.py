"""peftcpp.nn"""
